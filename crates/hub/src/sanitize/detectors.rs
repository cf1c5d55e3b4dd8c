//! The detectors that find sensitive values in one string and the placeholders that replace
//! them.
//!
//! Placeholders are chosen to keep every rule compiling wherever the value sat: textual ones
//! are identifier-safe (`REDACTED_USER`: valid in a YARA identifier, a Sigma value, a regular
//! expression and plain YAML), addresses become addresses from the documentation ranges
//! (192.0.2.0/24, 2001:db8::/32) so a Sigma `|cidr` value still parses, and the standard
//! ranges themselves (`10.0.0.0/8`, `fc00::/7` …, common in public filters) are left alone
//! because they say nothing about any tenant.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use regex::Regex;
use serde::Serialize;

/// What kind of sensitive value a replacement removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// A registered internal domain (or a name under it).
    InternalDomain,
    /// A value matching a registered host-name pattern.
    HostName,
    /// A registered user name.
    UserName,
    /// An address inside a registered address range.
    AddressRange,
    /// A value matching a registered ticket-id pattern.
    TicketId,
    /// An RFC 1918 IPv4 address or subnet.
    Rfc1918,
    /// An RFC 4193 unique-local IPv6 address or subnet.
    Rfc4193,
    /// A link-local address (169.254.0.0/16, fe80::/10).
    LinkLocal,
    /// An e-mail address.
    Email,
    /// The user part of a user-profile path (`C:\Users\NAME`, `/home/NAME`).
    UserProfilePath,
    /// The host of a UNC path (`\\HOST\share`).
    UncHost,
    /// The tenant's own id or name.
    TenantId,
}

/// Placeholder for user names.
pub const USER: &str = "REDACTED_USER";
/// Placeholder for host names.
pub const HOST: &str = "REDACTED_HOST";
/// Placeholder for ticket ids.
pub const TICKET: &str = "REDACTED_TICKET";
/// Placeholder for the tenant's own ids.
pub const TENANT: &str = "REDACTED_TENANT";
/// Placeholder for internal domains.
pub const DOMAIN: &str = "internal.example";
/// Placeholder for e-mail addresses.
pub const EMAIL: &str = "redacted@example.com";

/// Counts of replacements by class, plus the address numbering of one sanitization run (the
/// same private address gets the same placeholder everywhere in a rule).
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Replacements by class.
    pub counts: BTreeMap<Class, usize>,
    addresses: BTreeMap<IpAddr, IpAddr>,
}

impl Report {
    fn hit(&mut self, class: Class) {
        *self.counts.entry(class).or_default() += 1;
    }

    fn placeholder_for(&mut self, ip: IpAddr) -> IpAddr {
        // The first distinct address of a rule becomes .1 (::1), the next .2, and so on.
        let n = self.addresses.len() as u32;
        *self.addresses.entry(ip).or_insert_with(|| match ip {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::new(192, 0, 2, (n % 254 + 1) as u8)),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::new(
                0x2001,
                0xdb8,
                0,
                0,
                0,
                0,
                0,
                (n % 0xfffe + 1) as u16,
            )),
        })
    }
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// Replaces every match of `re` for which `accept(before, matched, after)` returns a
/// replacement, scanning left to right.
fn replace_with(
    text: &str,
    re: &Regex,
    mut accept: impl FnMut(Option<char>, &regex::Captures<'_>, Option<char>) -> Option<String>,
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for caps in re.captures_iter(text) {
        let m = caps.get(0).expect("group 0 always matches");
        let before = text[..m.start()].chars().next_back();
        let after = text[m.end()..].chars().next();
        if let Some(rep) = accept(before, &caps, after) {
            out.push_str(&text[last..m.start()]);
            out.push_str(&rep);
            last = m.end();
        }
    }
    out.push_str(&text[last..]);
    out
}

/// Compiled detectors for one tenant.
#[derive(Debug, Clone)]
pub struct Detectors {
    email: Regex,
    unc: Regex,
    profile: Regex,
    ipv4: Regex,
    ipv6: Regex,
    tickets: Vec<Regex>,
    hosts: Vec<Regex>,
    domains: Option<Regex>,
    users: Option<Regex>,
    tenant_ids: Option<Regex>,
    ranges: Vec<IpNet>,
}

fn literal_alternation(values: &[String]) -> Option<Regex> {
    let mut vals: Vec<&String> = values.iter().filter(|v| !v.trim().is_empty()).collect();
    if vals.is_empty() {
        return None;
    }
    // Longest first, so `jdoe.smith` wins over `jdoe`.
    vals.sort_by_key(|v| std::cmp::Reverse(v.len()));
    let alt: Vec<String> = vals.iter().map(|v| regex::escape(v.trim())).collect();
    Some(Regex::new(&format!("(?i)(?:{})", alt.join("|"))).expect("escaped literals compile"))
}

impl Detectors {
    /// Builds detectors from a tenant's registered values (already validated).
    pub fn new(
        tenant_ids: &[String],
        domains: &[String],
        hosts: &[Regex],
        users: &[String],
        ranges: &[IpNet],
        tickets: &[Regex],
    ) -> Detectors {
        let domains = {
            let mut d: Vec<&String> = domains.iter().filter(|d| !d.trim().is_empty()).collect();
            d.sort_by_key(|v| std::cmp::Reverse(v.len()));
            (!d.is_empty()).then(|| {
                let alt: Vec<String> = d
                    .iter()
                    .map(|v| regex::escape(v.trim().trim_start_matches('.')))
                    .collect();
                Regex::new(&format!(r"(?i)(?:[a-z0-9_-]+\.)*(?:{})", alt.join("|")))
                    .expect("escaped domains compile")
            })
        };
        Detectors {
            email: Regex::new(r"(?i)[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}")
                .expect("static regex"),
            unc: Regex::new(r"(\\{2,4})([A-Za-z0-9][A-Za-z0-9_.-]*)").expect("static regex"),
            profile: Regex::new(
                r"(?i)(\\+|/)(users|documents and settings|home)(\\+|/)([a-z0-9._$-]+)",
            )
            .expect("static regex"),
            ipv4: Regex::new(r"\d{1,3}(?:\\?\.\d{1,3}){3}(?:/\d{1,2})?").expect("static regex"),
            ipv6: Regex::new(r"(?i)[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}(?:/\d{1,3})?")
                .expect("static regex"),
            tickets: tickets.to_vec(),
            hosts: hosts.to_vec(),
            domains,
            users: literal_alternation(users),
            tenant_ids: literal_alternation(tenant_ids),
            ranges: ranges.to_vec(),
        }
    }

    /// Replaces every sensitive value in `text`, counting replacements in `report`.
    pub fn sanitize(&self, text: &str, report: &mut Report) -> String {
        let mut s = replace_with(text, &self.email, |_, caps, _| {
            let m = &caps[0];
            (!m.eq_ignore_ascii_case(EMAIL)).then(|| {
                report.hit(Class::Email);
                EMAIL.to_string()
            })
        });
        s = replace_with(&s, &self.unc, |before, caps, _| {
            let ok_before = before.is_none_or(|c| !(c == '\\' || c == ':' || is_word(c)));
            (ok_before && &caps[2] != HOST).then(|| {
                report.hit(Class::UncHost);
                format!("{}{HOST}", &caps[1])
            })
        });
        s = replace_with(&s, &self.profile, |before, caps, _| {
            let name = caps[4].to_ascii_lowercase();
            let generic = ["public", "default", "all users", "default user", "shared"];
            let ok_before = before.is_none_or(|c| !is_word(c));
            (ok_before && !generic.contains(&name.as_str()) && &caps[4] != USER).then(|| {
                report.hit(Class::UserProfilePath);
                format!("{}{}{}{USER}", &caps[1], &caps[2], &caps[3])
            })
        });
        for re in &self.tickets {
            s = bounded(&s, re, TICKET, Class::TicketId, report);
        }
        for re in &self.hosts {
            s = bounded(&s, re, HOST, Class::HostName, report);
        }
        if let Some(re) = &self.domains {
            s = replace_with(&s, re, |before, caps, after| {
                let m = &caps[0];
                let ok_before = before.is_none_or(|c| !(is_word(c) || c == '.' || c == '-'));
                let ok_after = after.is_none_or(|c| !(is_word(c) || c == '-'));
                (ok_before && ok_after && !m.eq_ignore_ascii_case(DOMAIN)).then(|| {
                    report.hit(Class::InternalDomain);
                    DOMAIN.to_string()
                })
            });
        }
        if let Some(re) = &self.users {
            s = bounded(&s, re, USER, Class::UserName, report);
        }
        if let Some(re) = &self.tenant_ids {
            s = bounded(&s, re, TENANT, Class::TenantId, report);
        }
        s = replace_with(&s, &self.ipv4, |before, caps, after| {
            let ok_before = before.is_none_or(|c| !(is_word(c) || c == '.'));
            let ok_after = after.is_none_or(|c| !(c.is_ascii_digit() || c == '.'));
            if !ok_before || !ok_after {
                return None;
            }
            let raw = &caps[0];
            let escaped = raw.contains("\\.");
            let plain = raw.replace("\\.", ".");
            let rep = self.address(&plain, report)?;
            Some(if escaped {
                rep.replace('.', "\\.")
            } else {
                rep
            })
        });
        s = replace_with(&s, &self.ipv6, |before, caps, after| {
            let ok_before =
                before.is_none_or(|c| !(c.is_ascii_hexdigit() || c == ':' || is_word(c)));
            let ok_after = after.is_none_or(|c| !(c.is_ascii_hexdigit() || c == ':'));
            let full_form = caps[0].contains("::") || caps[0].matches(':').count() >= 7;
            if !ok_before || !ok_after || !full_form {
                return None;
            }
            self.address(&caps[0], report)
        });
        s
    }

    /// Placeholder for an address or subnet if it is sensitive, `None` if not.
    fn address(&self, text: &str, report: &mut Report) -> Option<String> {
        let (ip, prefix) = match text.split_once('/') {
            Some((ip, p)) => (ip.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let class = self.classify(ip, prefix)?;
        report.hit(class);
        let rep = report.placeholder_for(ip);
        Some(match (rep, prefix) {
            (IpAddr::V4(_), Some(p)) => format!("192.0.2.0/{}", p.max(24)),
            (IpAddr::V6(_), Some(p)) => format!("2001:db8::/{}", p.max(32)),
            (rep, None) => rep.to_string(),
        })
    }

    fn classify(&self, ip: IpAddr, prefix: Option<u8>) -> Option<Class> {
        if self.ranges.iter().any(|r| r.contains(&ip)) {
            return Some(Class::AddressRange);
        }
        // The standard ranges written out whole are public knowledge, not tenant data.
        let whole = |net: &str, p: u8| prefix == Some(p) && net.parse::<IpAddr>().ok() == Some(ip);
        let standard = whole("10.0.0.0", 8)
            || whole("172.16.0.0", 12)
            || whole("192.168.0.0", 16)
            || whole("169.254.0.0", 16)
            || whole("fc00::", 7)
            || whole("fd00::", 8)
            || whole("fe80::", 10);
        if standard {
            return None;
        }
        match ip {
            IpAddr::V4(v4) if v4.is_private() => Some(Class::Rfc1918),
            IpAddr::V4(v4) if v4.is_link_local() => Some(Class::LinkLocal),
            IpAddr::V6(v6) if (v6.segments()[0] & 0xfe00) == 0xfc00 => Some(Class::Rfc4193),
            IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80 => Some(Class::LinkLocal),
            _ => None,
        }
    }
}

/// Replaces matches of `re` that stand as whole tokens (no letter or digit on either side).
fn bounded(text: &str, re: &Regex, placeholder: &str, class: Class, report: &mut Report) -> String {
    replace_with(text, re, |before, caps, after| {
        let m = &caps[0];
        let ok = !m.is_empty()
            && before.is_none_or(|c| !is_word(c))
            && after.is_none_or(|c| !is_word(c))
            && m != placeholder;
        ok.then(|| {
            report.hit(class);
            placeholder.to_string()
        })
    })
}
