//! Chaincode-as-a-service packages: their `connection.json`, its template
//! values, and the checks the peer would otherwise make only when it dials.
//!
//! As Fabric's own ccaas builder does, `build` fills `{{.key}}` in the string
//! fields from the JSON object in `CHAINCODE_AS_A_SERVICE_BUILDER_CONFIG`
//! (e.g. `{"peername":"peer0org1"}`); cclaunch adds defaults for those values
//! from config (`cclaunch.builder.ccaas.templateValues`). Only the `{{.key}}`
//! form of Go templates is understood; anything else is refused by name
//! rather than copied through for the peer to dial.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Fabric's variable holding template values as a JSON object.
pub const CONFIG_ENV: &str = "CHAINCODE_AS_A_SERVICE_BUILDER_CONFIG";

/// The file in a ccaas package's code (and in BLD), and the one `release`
/// writes under `chaincode/server/` for the peer.
pub const CONNECTION_FILE: &str = "connection.json";

/// connection.json with the field names the peer reads
/// (`externalbuilder.ChaincodeServerUserData`; `domain` is Fabric 3's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub address: String,
    /// The name the chaincode's TLS certificate is checked for (Fabric 3.x).
    #[serde(default)]
    pub domain: String,
    /// A Go duration (`10s`); empty = the peer's default (3s).
    #[serde(default)]
    pub dial_timeout: String,
    #[serde(default)]
    pub tls_required: bool,
    #[serde(default)]
    pub client_auth_required: bool,
    /// PEM.
    #[serde(default)]
    pub client_key: String,
    /// PEM.
    #[serde(default)]
    pub client_cert: String,
    /// PEM.
    #[serde(default)]
    pub root_cert: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("{CONFIG_ENV} is not a JSON object: {0}")]
    Values(String),
    #[error("{field}: no value for {{{{.{key}}}}}; set it in {CONFIG_ENV} (JSON) or cclaunch.builder.ccaas.templateValues")]
    Missing { field: &'static str, key: String },
    #[error("{field}: the template value {key:?} is not a string, number or boolean")]
    NotScalar { field: &'static str, key: String },
    #[error("{field}: unsupported template action {action:?}; only {{{{.key}}}} is understood")]
    Unsupported { field: &'static str, action: String },
    #[error("{field}: unclosed {{{{ in {text:?}")]
    Unclosed { field: &'static str, text: String },
    #[error("address is empty; the peer needs host:port to dial the chaincode")]
    NoAddress,
    #[error("dial_timeout {0:?} is not a duration such as 10s")]
    DialTimeout(String),
    #[error("tls_required is set but {0} is empty")]
    TlsMissing(&'static str),
    #[error("{0} is not PEM (no -----BEGIN line)")]
    NotPem(&'static str),
}

/// Template values: config's defaults, then those of [`CONFIG_ENV`] (as text).
pub fn values(
    defaults: &BTreeMap<String, Value>,
    env: Option<&str>,
) -> Result<BTreeMap<String, Value>, Error> {
    let mut values = defaults.clone();
    if let Some(text) = env.filter(|t| !t.trim().is_empty()) {
        let parsed: BTreeMap<String, Value> =
            serde_json::from_str(text).map_err(|e| Error::Values(e.to_string()))?;
        values.extend(parsed);
    }
    Ok(values)
}

impl Connection {
    /// Fills the templates and checks the result as the peer will use it. TLS
    /// fields are dropped when TLS is off, as Fabric's ccaas builder does.
    pub fn render(&self, values: &BTreeMap<String, Value>) -> Result<Connection, Error> {
        let fill = |field, text: &str| render(field, text, values);
        let mut out = Connection {
            address: fill("address", &self.address)?,
            domain: fill("domain", &self.domain)?,
            dial_timeout: fill("dial_timeout", &self.dial_timeout)?,
            tls_required: self.tls_required,
            ..Connection::default()
        };
        if self.tls_required {
            out.client_auth_required = self.client_auth_required;
            out.root_cert = fill("root_cert", &self.root_cert)?;
            out.client_key = fill("client_key", &self.client_key)?;
            out.client_cert = fill("client_cert", &self.client_cert)?;
        }
        out.validate()?;
        Ok(out)
    }

    /// The peer's own checks (`ChaincodeServerInfo`), plus PEM shape and the
    /// duration syntax, so a bad file fails at install rather than at dial.
    pub fn validate(&self) -> Result<(), Error> {
        if self.address.trim().is_empty() {
            return Err(Error::NoAddress);
        }
        if !self.dial_timeout.is_empty() && !go_duration(&self.dial_timeout) {
            return Err(Error::DialTimeout(self.dial_timeout.clone()));
        }
        if !self.tls_required {
            return Ok(());
        }
        let mut pems = vec![("root_cert", &self.root_cert)];
        if self.client_auth_required {
            pems.extend([
                ("client_key", &self.client_key),
                ("client_cert", &self.client_cert),
            ]);
        }
        for (field, pem) in pems {
            if pem.is_empty() {
                return Err(Error::TlsMissing(field));
            }
            if !pem.contains("-----BEGIN ") {
                return Err(Error::NotPem(field));
            }
        }
        Ok(())
    }
}

/// `{{.key}}` (spaces allowed inside the braces) replaced by its value.
fn render(
    field: &'static str,
    text: &str,
    values: &BTreeMap<String, Value>,
) -> Result<String, Error> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or_else(|| Error::Unclosed {
            field,
            text: text.to_string(),
        })?;
        let action = after[..close].trim();
        let key = action
            .strip_prefix('.')
            .filter(|k| !k.is_empty() && k.chars().all(|c| c.is_alphanumeric() || c == '_'))
            .ok_or_else(|| Error::Unsupported {
                field,
                action: format!("{{{{{}}}}}", &after[..close]),
            })?;
        let value = values.get(key).ok_or_else(|| Error::Missing {
            field,
            key: key.to_string(),
        })?;
        match value {
            Value::String(s) => out.push_str(s),
            Value::Number(n) => out.push_str(&n.to_string()),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            _ => {
                return Err(Error::NotScalar {
                    field,
                    key: key.to_string(),
                })
            }
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Go's `time.ParseDuration` syntax: `[-+]` then number+unit pairs, or `0`.
fn go_duration(text: &str) -> bool {
    let mut rest = text.strip_prefix(['-', '+']).unwrap_or(text);
    if rest == "0" {
        return true;
    }
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let number = &rest[..digits];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return false;
        }
        rest = &rest[digits..];
        let unit = ["ns", "us", "µs", "μs", "ms", "s", "m", "h"]
            .into_iter()
            .find(|u| {
                rest.starts_with(u) && !rest[u.len()..].starts_with(|c: char| c.is_alphabetic())
            });
        match unit {
            Some(unit) => rest = &rest[unit.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vals(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn templates_take_env_values_over_config_defaults() {
        let defaults = vals(&[("peername", json!("cfgpeer")), ("port", json!(9999))]);
        let merged = values(&defaults, Some(r#"{"peername":"peer0org1"}"#)).unwrap();
        let conn = Connection {
            address: "{{.peername}}_mycc:{{ .port }}".into(),
            dial_timeout: "10s".into(),
            ..Connection::default()
        };
        let out = conn.render(&merged).unwrap();
        assert_eq!(out.address, "peer0org1_mycc:9999");
        assert_eq!(out.dial_timeout, "10s");
        assert!(values(&defaults, Some("[1]")).is_err());
        assert!(values(&defaults, Some("  ")).is_ok());
    }

    #[test]
    fn template_errors_name_the_field_and_key() {
        let none = BTreeMap::new();
        let err = render("address", "{{.peername}}:1", &none).unwrap_err();
        assert_eq!(
            err,
            Error::Missing {
                field: "address",
                key: "peername".into()
            }
        );
        assert!(
            err.to_string().contains("no value for {{.peername}}"),
            "{err}"
        );
        let err = render("address", "{{if .x}}a{{end}}", &none).unwrap_err();
        assert!(
            err.to_string()
                .contains("unsupported template action \"{{if .x}}\""),
            "{err}"
        );
        assert!(matches!(
            render("address", "a{{.x", &none),
            Err(Error::Unclosed { .. })
        ));
        let nested = vals(&[("x", json!({"a": 1}))]);
        assert!(matches!(
            render("address", "{{.x}}", &nested),
            Err(Error::NotScalar { .. })
        ));
        assert_eq!(
            render("address", "plain:7052", &none).unwrap(),
            "plain:7052"
        );
    }

    #[test]
    fn the_peers_checks_apply_before_the_peer_dials() {
        let none = BTreeMap::new();
        let ok = Connection {
            address: "cc:9999".into(),
            ..Connection::default()
        };
        assert!(ok.render(&none).is_ok());
        let no_addr = Connection::default();
        assert_eq!(no_addr.render(&none), Err(Error::NoAddress));
        let bad_timeout = Connection {
            dial_timeout: "10 seconds".into(),
            ..ok.clone()
        };
        assert!(matches!(
            bad_timeout.render(&none),
            Err(Error::DialTimeout(_))
        ));
        let tls = Connection {
            tls_required: true,
            client_auth_required: true,
            root_cert: "-----BEGIN CERTIFICATE-----\n".into(),
            client_cert: "-----BEGIN CERTIFICATE-----\n".into(),
            ..ok.clone()
        };
        assert_eq!(tls.render(&none), Err(Error::TlsMissing("client_key")));
        let tls_off = Connection {
            tls_required: false,
            client_key: "secret".into(),
            ..tls.clone()
        };
        let out = tls_off.render(&none).unwrap();
        assert_eq!((out.client_key.as_str(), out.root_cert.as_str()), ("", ""));
        let not_pem = Connection {
            client_auth_required: false,
            root_cert: "/etc/ca.pem".into(),
            ..tls
        };
        assert_eq!(not_pem.render(&none), Err(Error::NotPem("root_cert")));
    }

    #[test]
    fn durations_follow_go() {
        for ok in [
            "10s", "1m30s", "1.5h", "300ms", "0", "-2s", "100us", "5µs", "3ns",
        ] {
            assert!(go_duration(ok), "{ok}");
        }
        for bad in ["", "10", "s", "10 s", "1.2.3s", "10sec", "-"] {
            assert!(!go_duration(bad), "{bad}");
        }
    }
}
