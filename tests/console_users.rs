//! The console's Users node driven by key events (issue 8): add a user with the password
//! typed twice and masked, change a password, edit topic permissions, remove a user; then
//! Apply sends a configuration whose hashes verify and whose rules are those typed.

use std::path::PathBuf;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use roost::auth::acl::{Access, TopicRule};
use roost::auth::password::StoredHash;
use roost::config::Config;
use roost::console::app::{Focus, Popup};
use roost::console::node::Node;
use roost::console::theme::Theme;
use roost::console::users::Step;
use roost::console::{Action, App, Effect};

fn app() -> App {
    App::new(
        Config::default(),
        PathBuf::from("roost.ron"),
        Theme::default(),
    )
}

fn press(app: &mut App, code: KeyCode) -> Option<Effect> {
    app.update(Action::Key(KeyEvent::new(code, KeyModifiers::NONE)))
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        assert_eq!(press(app, KeyCode::Char(c)), None);
    }
}

/// From the start: the tree down to Users, then into its list.
fn open_users(app: &mut App) {
    while app.node != Node::Users {
        press(app, KeyCode::Char('j'));
    }
    press(app, KeyCode::Tab);
    assert_eq!(app.focus, Focus::Pane);
}

fn verifies(config: &Config, name: &str, password: &str) -> bool {
    let user = config
        .users
        .iter()
        .find(|u| u.username == name)
        .expect("user present");
    StoredHash::parse(&user.password_hash)
        .unwrap()
        .verify(password.as_bytes())
}

fn add_user(app: &mut App, name: &str, password: &str) {
    press(app, KeyCode::Char('n'));
    type_text(app, name);
    press(app, KeyCode::Enter);
    type_text(app, password);
    press(app, KeyCode::Enter);
    type_text(app, password);
    press(app, KeyCode::Enter);
}

#[test]
fn add_a_user_with_the_password_typed_twice_and_masked() {
    let mut app = app();
    open_users(&mut app);
    press(&mut app, KeyCode::Char('n'));
    // Letters that are commands elsewhere (j, q, p) are text in the dialog.
    type_text(&mut app, "jqp");
    press(&mut app, KeyCode::Enter);
    let dialog = app.user_dialog.as_ref().expect("dialog open");
    assert_eq!(dialog.step, Step::Password);
    type_text(&mut app, "s3cret");
    let dialog = app.user_dialog.as_ref().expect("dialog open");
    assert_eq!(dialog.shown(), "******", "the password is masked");
    press(&mut app, KeyCode::Enter);
    // A mismatch asks for the password again, from the first time.
    type_text(&mut app, "s3creT");
    press(&mut app, KeyCode::Enter);
    let dialog = app.user_dialog.as_ref().expect("dialog still open");
    assert_eq!(dialog.step, Step::Password);
    assert!(dialog.error.as_deref().unwrap_or("").contains("differ"));
    assert!(app.pending.users.is_empty());
    type_text(&mut app, "s3cret");
    press(&mut app, KeyCode::Enter);
    type_text(&mut app, "s3cret");
    press(&mut app, KeyCode::Enter);
    assert!(app.user_dialog.is_none());
    assert_eq!(app.pending.users.len(), 1);
    assert!(app.pending.users[0].password_hash.starts_with("$argon2id$"));
    assert!(verifies(&app.pending, "jqp", "s3cret"));
    assert!(app.notice.as_ref().unwrap().text.contains("user jqp added"));
    // Apply sends it; the config is valid.
    match press(&mut app, KeyCode::Char('a')) {
        Some(Effect::Apply { config, .. }) => {
            config.validate().unwrap();
            assert!(verifies(&config, "jqp", "s3cret"));
        }
        other => panic!("expected Apply, got {other:?}"),
    }
}

#[test]
fn a_duplicate_name_is_refused_and_esc_cancels_without_a_change() {
    let mut app = app();
    open_users(&mut app);
    add_user(&mut app, "alice", "a");
    let before = app.pending.clone();
    press(&mut app, KeyCode::Char('n'));
    type_text(&mut app, "alice");
    press(&mut app, KeyCode::Enter);
    let dialog = app.user_dialog.as_ref().expect("still open");
    assert_eq!(dialog.step, Step::Name);
    assert!(dialog.error.as_deref().unwrap_or("").contains("exists"));
    press(&mut app, KeyCode::Esc);
    assert!(app.user_dialog.is_none());
    assert_eq!(app.pending, before);
}

#[test]
fn change_the_password_of_the_selected_user() {
    let mut app = app();
    open_users(&mut app);
    add_user(&mut app, "alice", "old");
    add_user(&mut app, "bob", "b");
    press(&mut app, KeyCode::Char('g'));
    press(&mut app, KeyCode::Char('p'));
    assert_eq!(app.user_dialog.as_ref().unwrap().username, "alice");
    type_text(&mut app, "new");
    press(&mut app, KeyCode::Enter);
    type_text(&mut app, "new");
    press(&mut app, KeyCode::Enter);
    assert!(verifies(&app.pending, "alice", "new"));
    assert!(!verifies(&app.pending, "alice", "old"));
    assert!(verifies(&app.pending, "bob", "b"));
}

#[test]
fn edit_topic_permissions_as_one_line_of_rules() {
    let mut app = app();
    open_users(&mut app);
    add_user(&mut app, "alice", "a");
    press(&mut app, KeyCode::Char('e'));
    type_text(
        &mut app,
        "readwrite alice/#; deny alice/secret/#; read a/#/b",
    );
    press(&mut app, KeyCode::Enter);
    let dialog = app
        .user_dialog
        .as_ref()
        .expect("an invalid filter keeps it open");
    assert!(dialog.error.as_deref().unwrap_or("").contains("a/#/b"));
    for _ in 0.."; read a/#/b".len() {
        press(&mut app, KeyCode::Backspace);
    }
    press(&mut app, KeyCode::Enter);
    assert!(app.user_dialog.is_none());
    assert_eq!(
        app.pending.acl.users["alice"],
        vec![
            TopicRule {
                access: Access::ReadWrite,
                topic: "alice/#".into()
            },
            TopicRule {
                access: Access::Deny,
                topic: "alice/secret/#".into()
            },
        ]
    );
    // Opening it again shows the rules as they are.
    press(&mut app, KeyCode::Char('e'));
    assert_eq!(
        app.user_dialog.as_ref().unwrap().input.value(),
        "readwrite alice/#; deny alice/secret/#"
    );
    press(&mut app, KeyCode::Esc);
    app.pending.validate().unwrap();
}

#[test]
fn remove_asks_first_and_says_what_it_invalidates() {
    let mut app = app();
    open_users(&mut app);
    add_user(&mut app, "alice", "a");
    app.pending.acl.users.insert(
        "alice".into(),
        vec![TopicRule {
            access: Access::Read,
            topic: "x".into(),
        }],
    );
    press(&mut app, KeyCode::Char('d'));
    assert_eq!(app.popup, Some(Popup::ConfirmRemoveUser("alice".into())));
    press(&mut app, KeyCode::Char('n'));
    assert_eq!(app.popup, None);
    assert_eq!(app.pending.users.len(), 1, "declined: nothing removed");
    press(&mut app, KeyCode::Char('d'));
    press(&mut app, KeyCode::Char('y'));
    assert!(app.pending.users.is_empty());
    assert!(!app.pending.acl.users.contains_key("alice"));
    assert!(app.notice.as_ref().unwrap().text.contains("removed"));
}
