use super::*;

#[test]
fn all_means_every_mode_and_lists_are_deduplicated() {
    assert_eq!(parse_modes("all").unwrap().len(), 4);
    assert_eq!(
        parse_modes("master,workers,master").unwrap(),
        vec![Mode::Master, Mode::Workers]
    );
    assert!(
        parse_modes("masters")
            .unwrap_err()
            .to_string()
            .contains("`masters`")
    );
}
