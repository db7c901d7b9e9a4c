//! The Users node's dialogs: adding a user (name, then the password typed twice, masked),
//! changing a password, and editing a user's topic permissions as one line of rules. Each
//! dialog edits the pending configuration only when it completes; Apply makes it live.
//!
//! Pure state driven by key events, so that tests can type into it without a terminal.

use ratatui::crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use tui_input::Input;
use tui_input::backend::crossterm::EventHandler;

use crate::auth::acl::{Access, TopicRule};
use crate::auth::password::hash_password;
use crate::config::{Config, User};
use crate::mqtt::topic;

/// Which question the dialog asks now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A new user's name.
    Name,
    /// The password, the first time.
    Password,
    /// The password again, to catch a typing mistake nobody can see.
    Again,
    /// The topic permissions, as `access filter; access filter; ...`.
    Rules,
}

#[derive(Debug, Clone)]
pub struct UserDialog {
    /// The user being changed; empty while a new user's name is asked.
    pub username: String,
    pub adding: bool,
    pub step: Step,
    pub input: Input,
    /// The first password, kept until the second one is typed.
    first: String,
    pub error: Option<String>,
}

/// What a key did to the dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialogOutcome {
    /// Still open.
    Open,
    /// Closed without a change.
    Cancelled,
    /// Closed, the pending configuration changed; the text says how.
    Done(String),
}

impl UserDialog {
    pub fn add() -> UserDialog {
        UserDialog::at(String::new(), true, Step::Name, String::new())
    }

    pub fn change_password(username: &str) -> UserDialog {
        UserDialog::at(username.to_string(), false, Step::Password, String::new())
    }

    pub fn edit_rules(config: &Config, username: &str) -> UserDialog {
        let rules = config
            .acl
            .users
            .get(username)
            .map(|rules| rules_text(rules))
            .unwrap_or_default();
        UserDialog::at(username.to_string(), false, Step::Rules, rules)
    }

    fn at(username: String, adding: bool, step: Step, text: String) -> UserDialog {
        UserDialog {
            username,
            adding,
            step,
            input: Input::new(text),
            first: String::new(),
            error: None,
        }
    }

    /// Whether what is typed is shown as `*`.
    pub fn is_masked(&self) -> bool {
        matches!(self.step, Step::Password | Step::Again)
    }

    pub fn title(&self) -> String {
        match (&self.step, self.adding) {
            (Step::Rules, _) => format!("Topic permissions of {}", self.username),
            (_, true) => "Add user".to_string(),
            (_, false) => format!("Change the password of {}", self.username),
        }
    }

    pub fn prompt(&self) -> &'static str {
        match self.step {
            Step::Name => "Username:",
            Step::Password => "Password:",
            Step::Again => "Password again:",
            Step::Rules => "Rules (read|write|readwrite|deny FILTER; ...):",
        }
    }

    /// The input as shown: the text, or one `*` per character.
    pub fn shown(&self) -> String {
        match self.is_masked() {
            true => "*".repeat(self.input.value().chars().count()),
            false => self.input.value().to_string(),
        }
    }

    /// Handles one key; edits `pending` when the dialog completes.
    pub fn on_key(&mut self, key: KeyEvent, pending: &mut Config) -> DialogOutcome {
        match key.code {
            KeyCode::Esc => DialogOutcome::Cancelled,
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                DialogOutcome::Cancelled
            }
            KeyCode::Enter => self.submit(pending),
            _ => {
                self.input.handle_event(&Event::Key(key));
                self.error = None;
                DialogOutcome::Open
            }
        }
    }

    fn submit(&mut self, pending: &mut Config) -> DialogOutcome {
        let value = self.input.value().to_string();
        match self.step {
            Step::Name => {
                let name = value.trim();
                if name.is_empty() {
                    self.error = Some("the username is empty".into());
                } else if pending.users.iter().any(|u| u.username == name) {
                    self.error = Some(format!("user {name} exists already"));
                } else {
                    self.username = name.to_string();
                    self.next(Step::Password);
                }
                DialogOutcome::Open
            }
            Step::Password => {
                if value.is_empty() {
                    self.error = Some("the password is empty".into());
                    return DialogOutcome::Open;
                }
                self.first = value;
                self.next(Step::Again);
                DialogOutcome::Open
            }
            Step::Again => {
                if value != self.first {
                    self.first.clear();
                    self.next(Step::Password);
                    self.error = Some("the two passwords differ; type it again".into());
                    return DialogOutcome::Open;
                }
                let hash = match hash_password(&value) {
                    Ok(hash) => hash,
                    Err(error) => {
                        self.error = Some(error.to_string());
                        return DialogOutcome::Open;
                    }
                };
                self.first.clear();
                match pending
                    .users
                    .iter_mut()
                    .find(|u| u.username == self.username)
                {
                    Some(user) => {
                        user.password_hash = hash;
                        DialogOutcome::Done(format!(
                            "password of {} changed (Apply to make it live)",
                            self.username
                        ))
                    }
                    None => {
                        pending.users.push(User {
                            username: self.username.clone(),
                            password_hash: hash,
                        });
                        DialogOutcome::Done(format!(
                            "user {} added (Apply to make it live)",
                            self.username
                        ))
                    }
                }
            }
            Step::Rules => match parse_rules(&value) {
                Ok(rules) => {
                    let count = rules.len();
                    if rules.is_empty() {
                        pending.acl.users.remove(&self.username);
                    } else {
                        pending.acl.users.insert(self.username.clone(), rules);
                    }
                    DialogOutcome::Done(format!(
                        "{count} topic rules for {} (Apply to make them live)",
                        self.username
                    ))
                }
                Err(message) => {
                    self.error = Some(message);
                    DialogOutcome::Open
                }
            },
        }
    }

    fn next(&mut self, step: Step) {
        self.step = step;
        self.input = Input::default();
        self.error = None;
    }
}

/// A user's rules as one line: `readwrite alice/#; deny alice/secret/#`.
pub fn rules_text(rules: &[TopicRule]) -> String {
    rules
        .iter()
        .map(|rule| format!("{} {}", rule.access.keyword(), rule.topic))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Parses the one-line form; the access may be left out (readwrite, as in an acl_file).
pub fn parse_rules(text: &str) -> Result<Vec<TopicRule>, String> {
    let mut rules = Vec::new();
    for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (access, filter) = match part.split_once(char::is_whitespace) {
            Some((word, filter)) => match Access::from_keyword(word) {
                Some(access) => (access, filter.trim()),
                None => (Access::ReadWrite, part),
            },
            None => (Access::ReadWrite, part),
        };
        if Access::from_keyword(filter).is_some() || !topic::is_valid_topic_filter(filter) {
            return Err(format!("{part:?}: {filter:?} is not a valid topic filter"));
        }
        rules.push(TopicRule {
            access,
            topic: filter.to_string(),
        });
    }
    Ok(rules)
}

/// Removes a user from `pending`; its topic rules go too, as nobody could use them any
/// more without a password (an anonymous or certificate client would need a new entry).
pub fn remove_user(pending: &mut Config, username: &str) -> String {
    pending.users.retain(|u| u.username != username);
    let had_rules = pending.acl.users.remove(username).is_some();
    match had_rules {
        true => format!("user {username} and its topic rules removed (Apply to make it live)"),
        false => format!("user {username} removed (Apply to make it live)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_round_trip_through_the_one_line_form() {
        let rules = parse_rules("readwrite a/#; deny a/secret/#;read  b/+ ; c").unwrap();
        assert_eq!(
            rules_text(&rules),
            "readwrite a/#; deny a/secret/#; read b/+; readwrite c"
        );
        assert!(parse_rules("read a/#/b").is_err());
        assert!(parse_rules("read").is_err());
        assert_eq!(parse_rules("  ").unwrap(), vec![]);
    }
}
