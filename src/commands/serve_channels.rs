//! `cairn serve`'s channel settings: `[email]`, `[sms]` and `[push]` in `cairn.toml`,
//! overridden by `CAIRN_*` variables (and the `--smtp-*` flags); secrets only from the
//! environment or a credential file it names. A channel left unconfigured writes to
//! the file outbox.

use crate::cli::ServeArgs;
use cairn_compiler::project::Manifest;
use cairn_runtime::channels::{PushConfig, SmsApi, SmsConfig, SmtpConfig, TlsMode};
use cairn_runtime::server::ServeConfig;
use std::path::Path;
use std::time::Duration;

/// Fills `config`'s channels from the manifest, the environment and the flags.
pub fn configure(
    args: &ServeArgs,
    manifest: &Manifest,
    root: &Path,
    config: &mut ServeConfig,
) -> miette::Result<()> {
    let email = manifest.email.clone().unwrap_or_default();
    config.email_from = env("CAIRN_EMAIL_FROM").or(email.from.clone());
    config.email_reply_to = env("CAIRN_EMAIL_REPLY_TO").or(email.reply_to.clone());
    let host = args
        .smtp_host
        .clone()
        .or_else(|| env("CAIRN_SMTP_HOST"))
        .or(email.smtp_host.clone());
    if let Some(host) = host {
        let mut smtp = SmtpConfig::new(&host);
        if let Some(tls) = args
            .smtp_tls
            .clone()
            .or_else(|| env("CAIRN_SMTP_TLS"))
            .or(email.tls.clone())
        {
            smtp.tls = tls
                .parse::<TlsMode>()
                .map_err(|e| miette::miette!("[email] tls: {e}"))?;
        }
        smtp.port = match args.smtp_port {
            Some(port) => Some(port),
            None => number("CAIRN_SMTP_PORT")?.or(email.smtp_port),
        };
        smtp.username = env("CAIRN_SMTP_USER").or(email.username.clone());
        smtp.password = secret("CAIRN_SMTP_PASSWORD")?;
        if let Some(size) = number("CAIRN_SMTP_POOL_SIZE")?.or(email.pool_size) {
            smtp.pool_size = size.max(1);
        }
        if let Some(seconds) = number("CAIRN_SMTP_TIMEOUT_SECS")?.or(email.timeout_secs) {
            smtp.timeout = Duration::from_secs(seconds.max(1));
        }
        smtp.ca_file = email.ca_file.as_ref().map(|f| root.join(f));
        smtp.hello_name = email.hello_name.clone();
        if config.email_from.is_none() {
            return Err(miette::miette!(
                "email goes through `{host}`, but no sender is set: add `from = \"Shop <news@shop.example>\"` \
                 to [email] in cairn.toml, or set CAIRN_EMAIL_FROM"
            ));
        }
        config.smtp = Some(smtp);
    }

    let sms = manifest.sms.clone().unwrap_or_default();
    let provider = env("CAIRN_SMS_PROVIDER").or(sms.provider.clone());
    if let Some(provider) = provider {
        let api = match provider.as_str() {
            "twilio" => SmsApi::Twilio {
                account_sid: env("CAIRN_SMS_ACCOUNT_SID")
                    .or(sms.account_sid.clone())
                    .ok_or_else(|| {
                        miette::miette!(
                            "[sms] provider = \"twilio\" needs `account_sid` (or CAIRN_SMS_ACCOUNT_SID)"
                        )
                    })?,
            },
            "json" => SmsApi::Json,
            other => {
                return Err(miette::miette!(
                    "[sms] provider: `{other}` is not a provider: expected `twilio` or `json`"
                ));
            }
        };
        let url = env("CAIRN_SMS_URL").or(sms.url.clone());
        let url = match (&api, url) {
            (_, Some(url)) => url,
            (SmsApi::Twilio { .. }, None) => "https://api.twilio.com".to_string(),
            (SmsApi::Json, None) => {
                return Err(miette::miette!(
                    "[sms] provider = \"json\" needs `url` (or CAIRN_SMS_URL)"
                ));
            }
        };
        let from = env("CAIRN_SMS_FROM").or(sms.from.clone()).ok_or_else(|| {
            miette::miette!("[sms] needs `from`, the sender number or id (or CAIRN_SMS_FROM)")
        })?;
        config.sms = Some(SmsConfig {
            api,
            url,
            token: secret("CAIRN_SMS_TOKEN")?,
            from,
            timeout: Duration::from_secs(
                number("CAIRN_SMS_TIMEOUT_SECS")?
                    .or(sms.timeout_secs)
                    .unwrap_or(10)
                    .max(1),
            ),
        });
    }

    let push = manifest.push.clone().unwrap_or_default();
    if let Some(url) = env("CAIRN_PUSH_URL").or(push.url.clone()) {
        config.push = Some(PushConfig {
            url,
            token: secret("CAIRN_PUSH_TOKEN")?,
            timeout: Duration::from_secs(
                number("CAIRN_PUSH_TIMEOUT_SECS")?
                    .or(push.timeout_secs)
                    .unwrap_or(10)
                    .max(1),
            ),
        });
    }
    Ok(())
}

/// Where each channel sends, for the start-up message.
pub fn describe(config: &ServeConfig, outbox: &Path) -> Vec<String> {
    let file = |what: &str| format!("{what} are written to `{}`", outbox.display());
    let mut lines = Vec::new();
    lines.push(match &config.smtp {
        Some(smtp) => format!(
            "emails go through SMTP at {}:{} ({})",
            smtp.host,
            smtp.port(),
            match smtp.tls {
                TlsMode::Starttls => "STARTTLS",
                TlsMode::Implicit => "TLS",
                TlsMode::None => "no TLS",
            }
        ),
        None => file("emails"),
    });
    lines.push(match &config.sms {
        Some(sms) => format!("SMS go to the provider at {}", sms.url),
        None => file("SMS"),
    });
    lines.push(match &config.push {
        Some(push) => format!("push messages go to the provider at {}", push.url),
        None => file("push messages"),
    });
    lines
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn number<T: std::str::FromStr>(name: &str) -> miette::Result<Option<T>> {
    env(name)
        .map(|v| {
            v.parse::<T>()
                .map_err(|_| miette::miette!("{name} is `{v}`: expected a whole number"))
        })
        .transpose()
}

/// A secret from `NAME`, or from the file `NAME_FILE` names (its first line).
fn secret(name: &str) -> miette::Result<Option<String>> {
    if let Some(value) = env(name) {
        return Ok(Some(value));
    }
    let file_var = format!("{name}_FILE");
    match env(&file_var) {
        None => Ok(None),
        Some(path) => {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                miette::miette!("{file_var} names `{path}`, which cannot be read: {e}")
            })?;
            let value = text.lines().next().unwrap_or_default().trim().to_string();
            if value.is_empty() {
                return Err(miette::miette!("{file_var} names `{path}`, which is empty"));
            }
            Ok(Some(value))
        }
    }
}
