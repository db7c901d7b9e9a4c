//! The nodes of the settings tree on the left, in display order.

use super::fields::{self, Field};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Node {
    Broker,
    Limits,
    CertificateAuthority,
    ServerCertificate,
    ClientCertificates,
    Users,
    Diagnostics,
    Status,
    Clients,
}

impl Node {
    /// Every node in tree order.
    pub const ALL: [Node; 9] = [
        Node::Broker,
        Node::Limits,
        Node::CertificateAuthority,
        Node::ServerCertificate,
        Node::ClientCertificates,
        Node::Users,
        Node::Diagnostics,
        Node::Status,
        Node::Clients,
    ];

    pub fn index(self) -> usize {
        Node::ALL.iter().position(|n| *n == self).unwrap_or(0)
    }

    /// The name in the tree.
    pub fn name(self) -> &'static str {
        match self {
            Node::Broker => "Broker",
            Node::Limits => "Limits",
            Node::CertificateAuthority => "Certificate Authority",
            Node::ServerCertificate => "Server Certificate",
            Node::ClientCertificates => "Client Certificates",
            Node::Users => "Users",
            Node::Diagnostics => "Diagnostics",
            Node::Status => "Status",
            Node::Clients => "Clients",
        }
    }

    /// The title of the pane on the right.
    pub fn pane_title(self) -> &'static str {
        match self {
            Node::Broker => "Server Settings",
            Node::Limits => "Limits",
            Node::CertificateAuthority => "Certificate Authority",
            Node::ServerCertificate => "Server Certificate",
            Node::ClientCertificates => "Client Certificates",
            Node::Users => "Users",
            Node::Diagnostics => "Diagnostics",
            Node::Status => "Status",
            Node::Clients => "Connected Clients",
        }
    }

    /// Indentation level in the tree: children of Broker and Status are indented.
    pub fn depth(self) -> usize {
        match self {
            Node::Broker | Node::Diagnostics | Node::Status => 0,
            _ => 1,
        }
    }

    /// The editable fields of the node's form (empty for views that are not forms).
    pub fn fields(self) -> &'static [Field] {
        match self {
            Node::Broker => fields::SERVER_SETTINGS,
            Node::Limits => fields::LIMITS,
            Node::CertificateAuthority => fields::CERTIFICATE_AUTHORITY,
            Node::ServerCertificate => fields::SERVER_CERTIFICATE,
            Node::Diagnostics => fields::DIAGNOSTICS,
            _ => &[],
        }
    }
}
