//! Unit tests of `config`.

use super::*;

fn parse(text: &str) -> Result<(Config, Vec<String>), ConfigError> {
    Config::parse(text, Path::new("test.yaml"))
}

#[test]
fn an_empty_file_gives_the_defaults() {
    let (c, w) = parse("").unwrap();
    assert_eq!(c.master_port, 9090);
    assert_eq!(c.database_url().unwrap(), DEFAULT_DATABASE_URL);
    assert!(w.is_empty());
}

#[test]
fn an_unknown_key_is_an_error_naming_it_and_the_file() {
    let err = parse("master_prot: 1234\n").unwrap_err().to_string();
    assert!(err.contains("master_prot"), "{err}");
    assert!(err.contains("test.yaml"), "{err}");
}

#[test]
fn obsolete_keys_are_accepted_with_a_warning() {
    let (_, w) = parse("debug: true\nauthentication_domains: []\n").unwrap();
    assert_eq!(w.len(), 2);
    assert!(w[0].contains("`debug`"));
}

#[test]
fn the_django_block_becomes_a_mysql_url() {
    let (c, _) = parse(
        "databases:\n  default:\n    ENGINE: django.db.backends.mysql\n    NAME: pinball\n    USER: flipper\n    PASSWORD: 'p@ss'\n    HOST: db\n    PORT: '3307'\n",
    )
    .unwrap();
    assert_eq!(
        c.database_url().unwrap(),
        "mysql://flipper:p%40ss@db:3307/pinball"
    );
    assert!(
        !format!("{c:?}").contains("p@ss"),
        "the password must not appear in Debug output"
    );
}

#[test]
fn both_database_forms_at_once_are_rejected() {
    let err = parse("database_url: sqlite://a.db\ndatabases: {default: {ENGINE: django.db.backends.sqlite3, NAME: b.db}}\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("not both"), "{err}");
}

#[test]
fn a_bad_master_name_is_rejected() {
    assert!(parse("master_name: 'a-b'\n").is_err());
}

#[test]
fn access_control_keys_are_read_and_checked() {
    let (c, _) = parse(
        "api_tokens:\n  - {name: ops, token: 0123456789abcdef0123, role: operator}\n  - {name: w, token: fedcba9876543210fedc, role: worker}\napi_token: 0123456789abcdef0123\n",
    )
    .unwrap();
    assert_eq!(c.api_tokens.len(), 2);
    assert_eq!(c.api_tokens[1].role, Role::Worker);
    assert!(
        !format!("{c:?}").contains("0123456789abcdef"),
        "tokens never show in Debug"
    );
    let weak = parse("api_tokens: [{name: ops, token: short, role: operator}]\n")
        .unwrap_err()
        .to_string();
    assert!(weak.contains("at least 16"), "{weak}");
    let role = parse("api_tokens: [{name: ops, token: 0123456789abcdef0123, role: admin}]\n")
        .unwrap_err()
        .to_string();
    assert!(role.contains("admin"), "{role}");
    let twice = parse("api_tokens: [{name: a, token: 0123456789abcdef0123, role: viewer}, {name: b, token: 0123456789abcdef0123, role: viewer}]\n")
        .unwrap_err()
        .to_string();
    assert!(twice.contains("same token"), "{twice}");
    let hash = parse("ui_users: [{username: alice, password_hash: plain, role: operator}]\n")
        .unwrap_err()
        .to_string();
    assert!(hash.contains("hash-password"), "{hash}");
}

#[test]
fn pools_are_names_and_default_to_default() {
    assert_eq!(parse("").unwrap().0.pools, ["default"]);
    assert_eq!(
        parse("pools: [default, heavy]").unwrap().0.pools,
        ["default", "heavy"]
    );
    for bad in ["pools: []", "pools: ['gpu large']"] {
        let e = parse(bad).unwrap_err().to_string();
        assert!(e.contains("pools"), "{bad}: {e}");
    }
}

/// The configuration reference cannot drift from the struct: every key of `Config` is
/// named in `docs/configuration.md` (`key`, or `key.sub` for a block).
#[test]
fn every_key_is_in_the_configuration_reference() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = std::fs::read_to_string(root.join("src/config/mod.rs")).unwrap();
    let reference = std::fs::read_to_string(root.join("docs/configuration.md")).unwrap();
    let body = source
        .split("\npub struct Config {\n")
        .nth(1)
        .and_then(|rest| rest.split("\n}\n").next())
        .expect("the Config struct");
    let keys: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("    pub "))
        .filter_map(|l| l.split(':').next())
        .collect();
    assert!(keys.len() > 40, "{keys:?}");
    let missing: Vec<&&str> = keys
        .iter()
        .filter(|k| {
            !reference.contains(&format!("`{k}`")) && !reference.contains(&format!("`{k}."))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "not in docs/configuration.md: {missing:?}"
    );
}

#[test]
fn every_example_configuration_parses_without_a_warning() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let (c, warnings) =
            Config::load(Some(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(warnings.is_empty(), "{}: {warnings:?}", path.display());
        assert!(c.database_url().is_ok(), "{}", path.display());
        names.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    names.sort();
    assert_eq!(names, ["mariadb.yaml", "multi-host.yaml", "sqlite.yaml"]);
}

#[test]
fn the_example_configuration_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("pinball.example.yaml");
    let (c, warnings) = Config::load(Some(&path)).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(c.database_url().unwrap().starts_with("sqlite://"));
}

#[test]
fn the_django_block_becomes_a_postgres_url() {
    let (c, _) = parse(
        "databases:\n  default:\n    ENGINE: django.db.backends.postgresql\n    NAME: pinball\n    USER: flipper\n    PASSWORD: 'p@ss'\n    HOST: db\n",
    )
    .unwrap();
    assert_eq!(
        c.database_url().unwrap(),
        "postgres://flipper:p%40ss@db:5432/pinball"
    );
}
