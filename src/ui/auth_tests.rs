use super::*;

#[test]
fn after_sign_in_only_a_path_of_this_site() {
    assert_eq!(local_path(Some("/jobs/?workflow=w")), "/jobs/?workflow=w");
    for bad in [
        "//evil.example/",
        "/\\evil.example",
        "https://evil.example/",
        "jobs",
        "/a\nb",
    ] {
        assert_eq!(local_path(Some(bad)), "/workflows/", "{bad}");
    }
    assert_eq!(local_path(None), "/workflows/");
}
