//! Identifiers that are all strings on the wire but must not be mixed up:
//! our work-order id (sent to the EAM as the reference to find the order
//! again) and the EAM's id of that order (Maximo `wonum`, ServiceNow
//! `sys_id`, SAP notification number). Both serialize as the bare string.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// Our id of a work order (a UUID string), sent to the EAM as the
    /// reference under which the order can be found again.
    WorkOrderId
);

string_id!(
    /// The EAM's id of an order we created there: Maximo `wonum`,
    /// ServiceNow `sys_id`, SAP notification number, or what a REST system
    /// answers.
    ExternalId
);

/// How later calls reach an order created in an EAM: its id there, the
/// site the EAM keeps it under (Maximo numbers work orders per site, so a
/// `wonum` alone may name another site's order) and the address the EAM
/// gave it (Maximo's `href`), which names exactly one order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EamRef {
    pub external_id: ExternalId,
    pub site: Option<String>,
    pub url: Option<String>,
}

impl EamRef {
    pub fn new(external_id: impl Into<ExternalId>) -> Self {
        Self { external_id: external_id.into(), site: None, url: None }
    }

    pub fn at_site(mut self, site: Option<String>) -> Self {
        self.site = site;
        self
    }

    pub fn with_url(mut self, url: Option<String>) -> Self {
        self.url = url;
        self
    }
}

impl fmt::Display for EamRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.site {
            Some(site) => write!(f, "{} (site {site})", self.external_id),
            None => write!(f, "{}", self.external_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_serialize_as_bare_strings() {
        let id = ExternalId::from("WO-1001");
        assert_eq!(serde_json::to_value(&id).unwrap(), serde_json::json!("WO-1001"));
        let back: ExternalId = serde_json::from_value(serde_json::json!("WO-1001")).unwrap();
        assert_eq!(back, id);
        let ours = WorkOrderId::new("01a2129a-6818-7095-8009-f1533ba7f1f4");
        assert_eq!(ours.to_string(), "01a2129a-6818-7095-8009-f1533ba7f1f4");
        assert_eq!(ours.as_str(), ours.clone().into_inner());
    }
}
