//! The `:` command line: `:clients`, `:status`, `:diag`, `:apply`, `:theme light`, `:help`,
//! `:quit`, every view by name, and Tab completion of the command word.

use super::node::Node;
use super::theme::BUILT_IN;

/// What a command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandLine {
    Open(Node),
    Apply,
    Theme(String),
    Help,
    Quit,
}

/// The command words, in completion order.
const WORDS: [&str; 14] = [
    "apply",
    "broker",
    "ca",
    "certificates",
    "clients",
    "diag",
    "help",
    "limits",
    "quit",
    "server-certificate",
    "status",
    "theme",
    "users",
    "diagnostics",
];

pub fn parse(line: &str) -> Result<CommandLine, String> {
    let line = line.trim().trim_start_matches(':');
    let mut words = line.split_whitespace();
    let word = words.next().unwrap_or("");
    let argument = words.next();
    Ok(match word {
        "apply" | "a" => CommandLine::Apply,
        "help" | "?" => CommandLine::Help,
        "quit" | "q" => CommandLine::Quit,
        "theme" => match argument {
            Some(name) => CommandLine::Theme(name.to_string()),
            None => {
                let names: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
                return Err(format!(":theme needs a name: {}", names.join(", ")));
            }
        },
        "broker" => CommandLine::Open(Node::Broker),
        "limits" => CommandLine::Open(Node::Limits),
        "ca" => CommandLine::Open(Node::CertificateAuthority),
        "server-certificate" => CommandLine::Open(Node::ServerCertificate),
        "certificates" => CommandLine::Open(Node::ClientCertificates),
        "users" => CommandLine::Open(Node::Users),
        "diag" | "diagnostics" => CommandLine::Open(Node::Diagnostics),
        "status" => CommandLine::Open(Node::Status),
        "clients" => CommandLine::Open(Node::Clients),
        "" => return Err("type a command, Tab completes".to_string()),
        other => return Err(format!("unknown command :{other} (Tab completes)")),
    })
}

/// A message while the typed word matches no command.
pub fn check(line: &str) -> Result<(), String> {
    let word = line.split_whitespace().next().unwrap_or("");
    if word.is_empty() || WORDS.iter().any(|w| w.starts_with(word)) {
        Ok(())
    } else {
        Err(format!("no command starts with {word:?}"))
    }
}

/// Completes the command word (or a theme name after `theme `); pressing Tab again on a
/// complete word moves to the next command with the same start.
pub fn complete(line: &str) -> String {
    if let Some(name) = line.strip_prefix("theme ") {
        let names: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
        return format!("theme {}", next_match(&names, name));
    }
    next_match(&WORDS, line.trim())
}

fn next_match(candidates: &[&str], typed: &str) -> String {
    // A complete word: Tab moves on to the next command.
    if let Some(index) = candidates.iter().position(|c| *c == typed) {
        return candidates[(index + 1) % candidates.len()].to_string();
    }
    candidates
        .iter()
        .find(|c| c.starts_with(typed))
        .map_or_else(|| typed.to_string(), |c| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_complete_and_parse() {
        assert_eq!(complete("cl"), "clients");
        assert_eq!(complete("st"), "status");
        assert_eq!(complete("theme l"), "theme light");
        assert_eq!(complete("zz"), "zz");
        assert_eq!(parse(":clients"), Ok(CommandLine::Open(Node::Clients)));
        assert_eq!(parse("diag"), Ok(CommandLine::Open(Node::Diagnostics)));
        assert_eq!(
            parse("theme light"),
            Ok(CommandLine::Theme("light".to_string()))
        );
        assert!(parse("frobnicate").is_err());
        assert!(check("cli").is_ok());
        assert!(check("xyz").is_err());
    }
}
