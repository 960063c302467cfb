//! The `dialplane` binary: `migrate`, `users create`, and start-up failures that name their key.

use std::process::Command;

fn dialplane(database_url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dialplane"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url)
        .output()
        .expect("the binary runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_and_users_create_prepare_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("cli.db").display());
    let migrated = dialplane(&url, &["migrate"]);
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));

    let created = dialplane(
        &url,
        &["users", "create", "--email", "Dev@Example.com", "--password", "dev-password", "--role", "developer"],
    );
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let db = dialplane::store::open(&url).await.unwrap();
    let user = dialplane::store::users::find_by_email(&db, "dev@example.com").await.unwrap().expect("user stored");
    assert_eq!(user.role, "developer");
    assert!(user.is_active && user.is_verified);
    assert!(dialplane::auth::verify_password("dev-password", &user.password_hash));
    assert!(
        dialplane::store::users::find_workspace(&db, &user.workspace_id).await.unwrap().is_some(),
        "a workspace of its own"
    );

    let again = dialplane(&url, &["users", "create", "--email", "dev@example.com", "--password", "dev-password"]);
    assert!(!again.status.success(), "a duplicate email is refused");
    let bad_role = dialplane(
        &url,
        &["users", "create", "--email", "x@example.com", "--password", "dev-password", "--role", "king"],
    );
    assert!(!bad_role.status.success());
    let short = dialplane(&url, &["users", "create", "--email", "x@example.com", "--password", "short"]);
    assert!(String::from_utf8_lossy(&short.stderr).contains("--password"));
}

#[test]
fn bad_configuration_fails_naming_the_key() {
    let output = Command::new(env!("CARGO_BIN_EXE_dialplane"))
        .arg("serve")
        .env("DIALPLANE_BIND", "not-an-address")
        .output()
        .expect("the binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("DIALPLANE_BIND"), "{stderr}");
}
