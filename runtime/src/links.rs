//! Signed links put in messages: one-click unsubscribe, the preference page, the open
//! pixel, tracked clicks and double opt-in confirmation.
//!
//! A link is `{base_url}/{path}/{token}` where the token is
//! `base64url(payload) "." base64url(HMAC-SHA256(secret, purpose "." payload))`. The
//! payload is a small JSON object naming the purpose, the contact and, where relevant,
//! the outbox message, the target URL, the consent and an expiry (Unix seconds). The
//! purpose is both inside the payload and mixed into the MAC, so a token minted for one
//! purpose (an open pixel, say) is refused as another (an unsubscribe). Verification
//! compares MACs in constant time (`Mac::verify_slice`), and never trusts a payload
//! whose MAC does not match. Nothing in a token is secret: it is readable, not forgeable.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// What a link does when followed. Each has its own path under the public base URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Purpose {
    #[serde(rename = "unsubscribe")]
    Unsubscribe,
    #[serde(rename = "open")]
    Open,
    #[serde(rename = "click")]
    Click,
    #[serde(rename = "preferences")]
    Preferences,
    #[serde(rename = "confirm")]
    Confirm,
}

impl Purpose {
    /// The path segment the daemon serves this purpose under.
    pub fn path(self) -> &'static str {
        match self {
            Purpose::Unsubscribe => "unsubscribe",
            Purpose::Open => "o",
            Purpose::Click => "c",
            Purpose::Preferences => "preferences",
            Purpose::Confirm => "confirm",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Purpose::Unsubscribe => "unsubscribe",
            Purpose::Open => "open",
            Purpose::Click => "click",
            Purpose::Preferences => "preferences",
            Purpose::Confirm => "confirm",
        }
    }
}

/// The verified content of a link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    #[serde(rename = "p")]
    pub purpose: Purpose,
    /// The contact the link was made for.
    #[serde(rename = "c")]
    pub contact_id: String,
    /// The outbox message that carried the link (unsubscribe, open, click).
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub outbox_id: Option<String>,
    /// Where a click link redirects to.
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The consent a confirmation link activates.
    #[serde(rename = "k", default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<String>,
    /// Unix seconds after which the link is refused.
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
}

/// Why a link was refused. None of these reveal anything about the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the link is malformed")]
    Malformed,
    #[error("the link's signature does not match")]
    BadSignature,
    #[error("the link is a {found} link, not a {expected} link")]
    WrongPurpose {
        expected: &'static str,
        found: &'static str,
    },
    #[error("the link expired")]
    Expired,
}

impl Link {
    fn new(purpose: Purpose, contact_id: &str) -> Link {
        Link {
            purpose,
            contact_id: contact_id.to_owned(),
            outbox_id: None,
            target: None,
            consent: None,
            expires: None,
        }
    }

    /// The signed token for this link.
    pub fn token(&self, secret: &[u8]) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        let payload = URL_SAFE_NO_PAD.encode(json);
        let mac = mac(secret, self.purpose, payload.as_bytes())
            .finalize()
            .into_bytes();
        format!("{payload}.{}", URL_SAFE_NO_PAD.encode(mac))
    }

    /// The full URL: `{base_url}/{path}/{token}`.
    pub fn url(&self, base_url: &str, secret: &[u8]) -> String {
        format!(
            "{}/{}/{}",
            base_url.trim_end_matches('/'),
            self.purpose.path(),
            self.token(secret)
        )
    }
}

fn mac(secret: &[u8], purpose: Purpose, payload: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable_hmac());
    mac.update(purpose.name().as_bytes());
    mac.update(b".");
    mac.update(payload);
    mac
}

#[expect(
    clippy::panic,
    reason = "HMAC takes keys of any length, so this cannot happen"
)]
fn unreachable_hmac() -> HmacSha256 {
    panic!("HMAC-SHA256 accepts every key length")
}

/// Checks `token` was signed with `secret` for `purpose` and has not expired at
/// `now` (Unix seconds). The MAC is checked first, in constant time; the payload is
/// only parsed once it is known to be authentic.
pub fn verify(secret: &[u8], token: &str, purpose: Purpose, now: i64) -> Result<Link, LinkError> {
    let token = token.trim();
    let (payload, signature) = token.split_once('.').ok_or(LinkError::Malformed)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| LinkError::Malformed)?;
    mac(secret, purpose, payload.as_bytes())
        .verify_slice(&signature)
        .map_err(|_| LinkError::BadSignature)?;
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| LinkError::Malformed)?;
    let link: Link = serde_json::from_slice(&json).map_err(|_| LinkError::Malformed)?;
    if link.purpose != purpose {
        return Err(LinkError::WrongPurpose {
            expected: purpose.name(),
            found: link.purpose.name(),
        });
    }
    if let Some(expires) = link.expires
        && now >= expires
    {
        return Err(LinkError::Expired);
    }
    Ok(link)
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// The one-click unsubscribe link of a message (RFC 8058 `List-Unsubscribe`): a POST
/// to it unsubscribes, a GET shows a confirmation page. It never expires.
pub fn unsubscribe_url(base_url: &str, secret: &[u8], contact_id: &str, outbox_id: &str) -> String {
    let mut link = Link::new(Purpose::Unsubscribe, contact_id);
    link.outbox_id = Some(outbox_id.to_owned());
    link.url(base_url, secret)
}

/// The 1x1 GIF whose fetch records `email_opened` for the message.
pub fn open_pixel_url(base_url: &str, secret: &[u8], contact_id: &str, outbox_id: &str) -> String {
    let mut link = Link::new(Purpose::Open, contact_id);
    link.outbox_id = Some(outbox_id.to_owned());
    link.url(base_url, secret)
}

/// A tracked link: records `email_clicked {url}` for the message, then redirects to
/// `target`. The target is signed, so the endpoint is not an open redirect.
pub fn click_url(
    base_url: &str,
    secret: &[u8],
    contact_id: &str,
    outbox_id: &str,
    target: &str,
) -> String {
    let mut link = Link::new(Purpose::Click, contact_id);
    link.outbox_id = Some(outbox_id.to_owned());
    link.target = Some(target.to_owned());
    link.url(base_url, secret)
}

/// The contact's preference page, where they see and change their consents.
pub fn preferences_url(base_url: &str, secret: &[u8], contact_id: &str) -> String {
    Link::new(Purpose::Preferences, contact_id).url(base_url, secret)
}

/// The double opt-in activation link for `consent`, refused after `expires` (Unix
/// seconds) when given.
pub fn confirm_url(
    base_url: &str,
    secret: &[u8],
    contact_id: &str,
    consent: &str,
    expires: Option<i64>,
) -> String {
    let mut link = Link::new(Purpose::Confirm, contact_id);
    link.consent = Some(consent.to_owned());
    link.expires = expires;
    link.url(base_url, secret)
}

/// Verifies an unsubscribe token (the last path segment of [`unsubscribe_url`]).
pub fn verify_unsubscribe(secret: &[u8], token: &str) -> Result<Link, LinkError> {
    verify(secret, token, Purpose::Unsubscribe, now())
}

/// Verifies an open-pixel token; a trailing `.gif` is accepted.
pub fn verify_open(secret: &[u8], token: &str) -> Result<Link, LinkError> {
    let token = token.strip_suffix(".gif").unwrap_or(token);
    verify(secret, token, Purpose::Open, now())
}

/// Verifies a click token; the signed target is in [`Link::target`].
pub fn verify_click(secret: &[u8], token: &str) -> Result<Link, LinkError> {
    let link = verify(secret, token, Purpose::Click, now())?;
    if link.target.is_none() || link.outbox_id.is_none() {
        return Err(LinkError::Malformed);
    }
    Ok(link)
}

/// Verifies a preference-page token.
pub fn verify_preferences(secret: &[u8], token: &str) -> Result<Link, LinkError> {
    verify(secret, token, Purpose::Preferences, now())
}

/// Verifies a double opt-in token; the consent is in [`Link::consent`].
pub fn verify_confirm(secret: &[u8], token: &str) -> Result<Link, LinkError> {
    let link = verify(secret, token, Purpose::Confirm, now())?;
    if link.consent.is_none() {
        return Err(LinkError::Malformed);
    }
    Ok(link)
}

/// The token of a link URL: its last path segment, without query or fragment.
pub fn token_of(url: &str) -> &str {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    url.rsplit('/').next().unwrap_or(url)
}

/// Replaces the value of every `href="..."` (or `'...'`) attribute of `html` for which
/// `replace` returns a new URL. `replace` sees the URL with HTML entities decoded; the
/// new one is written entity-encoded.
pub fn rewrite_hrefs(html: &str, mut replace: impl FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(html.len() + 256);
    let mut rest = html;
    loop {
        let Some(at) = find_href(rest) else {
            out.push_str(rest);
            return out;
        };
        let (before, after) = rest.split_at(at);
        out.push_str(before);
        // `after` starts with `href=` and a quote.
        let quote = after.as_bytes()[5] as char;
        let value_start = 6;
        let Some(len) = after[value_start..].find(quote) else {
            out.push_str(after);
            return out;
        };
        let value = &after[value_start..value_start + len];
        out.push_str(&after[..value_start]);
        match replace(&decode_entities(value)) {
            Some(new) => out.push_str(&new.replace('&', "&amp;").replace('"', "&quot;")),
            None => out.push_str(value),
        }
        rest = &after[value_start + len..];
    }
}

/// The byte offset of the next `href=` followed by a quote, any case.
fn find_href(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(5)).find(|&i| {
        bytes[i..i + 5].eq_ignore_ascii_case(b"href=") && matches!(bytes[i + 5], b'"' | b'\'')
    })
}

fn decode_entities(value: &str) -> String {
    value
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a link secret";
    const BASE: &str = "https://mail.example.com/";

    #[test]
    fn each_link_round_trips_through_its_verifier() {
        let url = unsubscribe_url(BASE, SECRET, "u1", "m1");
        assert!(
            url.starts_with("https://mail.example.com/unsubscribe/"),
            "{url}"
        );
        let link = verify_unsubscribe(SECRET, token_of(&url)).expect("valid unsubscribe");
        assert_eq!(link.contact_id, "u1");
        assert_eq!(link.outbox_id.as_deref(), Some("m1"));

        let url = open_pixel_url(BASE, SECRET, "u1", "m1");
        let link = verify_open(SECRET, token_of(&url)).expect("valid pixel");
        assert_eq!(link.outbox_id.as_deref(), Some("m1"));

        let url = click_url(
            BASE,
            SECRET,
            "u1",
            "m1",
            "https://shop.example/cart?x=1&y=2",
        );
        let link = verify_click(SECRET, token_of(&url)).expect("valid click");
        assert_eq!(
            link.target.as_deref(),
            Some("https://shop.example/cart?x=1&y=2")
        );

        let url = preferences_url(BASE, SECRET, "u 2/é");
        let link = verify_preferences(SECRET, token_of(&url)).expect("valid preferences");
        assert_eq!(link.contact_id, "u 2/é");

        let url = confirm_url(BASE, SECRET, "u1", "newsletter", Some(now() + 60));
        let link = verify_confirm(SECRET, token_of(&url)).expect("valid confirm");
        assert_eq!(link.consent.as_deref(), Some("newsletter"));
    }

    #[test]
    fn tampered_links_are_refused() {
        let url = click_url(BASE, SECRET, "u1", "m1", "https://shop.example/");
        let token = token_of(&url);
        // Another secret.
        assert_eq!(verify_click(b"other", token), Err(LinkError::BadSignature));
        // Another payload with the old signature: an attacker's target.
        let (_, signature) = token.split_once('.').expect("a dot");
        let mut forged = Link::new(Purpose::Click, "u1");
        forged.outbox_id = Some("m1".into());
        forged.target = Some("https://evil.example/".into());
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).expect("json"));
        assert_eq!(
            verify_click(SECRET, &format!("{forged_payload}.{signature}")),
            Err(LinkError::BadSignature)
        );
        // One flipped character in the signature.
        let mut chars: Vec<char> = token.chars().collect();
        let last = chars.len() - 1;
        chars[last] = if chars[last] == 'A' { 'B' } else { 'A' };
        let flipped: String = chars.into_iter().collect();
        assert!(verify_click(SECRET, &flipped).is_err());
        // Garbage.
        assert_eq!(verify_click(SECRET, "nodot"), Err(LinkError::Malformed));
        assert_eq!(verify_click(SECRET, "a.!!!"), Err(LinkError::Malformed));
        assert_eq!(verify_click(SECRET, ""), Err(LinkError::Malformed));
    }

    #[test]
    fn a_link_for_one_purpose_is_refused_for_another() {
        let pixel = open_pixel_url(BASE, SECRET, "u1", "m1");
        assert_eq!(
            verify_unsubscribe(SECRET, token_of(&pixel)),
            Err(LinkError::BadSignature)
        );
    }

    #[test]
    fn expired_links_are_refused() {
        let url = confirm_url(BASE, SECRET, "u1", "newsletter", Some(1_000));
        let token = token_of(&url);
        assert_eq!(
            verify(SECRET, token, Purpose::Confirm, 1_000),
            Err(LinkError::Expired)
        );
        assert!(verify(SECRET, token, Purpose::Confirm, 999).is_ok());
    }

    #[test]
    fn hrefs_are_rewritten_with_entities_decoded_and_encoded() {
        let html = r#"<a HREF="https://shop.example/?a=1&amp;b=2">x</a> <a href='mailto:x@y'>m</a> <a href="">e</a>href="#;
        let out = rewrite_hrefs(html, |url| {
            url.starts_with("https://").then(|| format!("T[{url}]&"))
        });
        assert_eq!(
            out,
            r#"<a HREF="T[https://shop.example/?a=1&amp;b=2]&amp;">x</a> <a href='mailto:x@y'>m</a> <a href="">e</a>href="#
        );
    }

    #[test]
    fn the_token_is_the_last_path_segment() {
        assert_eq!(token_of("https://x/o/abc.def?utm=1#top"), "abc.def");
        let url = open_pixel_url(BASE, SECRET, "u1", "m1");
        assert!(verify_open(SECRET, &format!("{}.gif", token_of(&url))).is_ok());
    }
}
