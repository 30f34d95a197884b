//! `--notify-mail N`: an audited action → its alert mail delivered at a
//! real SMTP server (aiosmtpd from PyPI, run by
//! `crates/jumpgate/tests/smtpd.py`: STARTTLS and AUTH required, on a
//! loopback port it picks), one event at a time, p50/p99/max.
//!
//! Each event is a vault write through the API (`vault-put`, audited); an
//! alert rule on `vault-put` sends a mail per entry naming the secret. The
//! time runs from just before the API call to the message's file in the
//! server's spool (polled every millisecond).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use jumpgate_net::tls::Trust;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::{Bins, start_site_with};

const SMTP_PASSWORD: &str = "bench-smtp-password-4Qx";

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

fn certificates(dir: &Path) -> Result<()> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::CommonName, "bench SMTP CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])?;
    leaf.distinguished_name = DistinguishedName::new();
    leaf.distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    let key = KeyPair::generate()?;
    let cert = leaf.signed_by(&key, &issuer)?;
    std::fs::write(dir.join("ca.pem"), ca_cert.pem())?;
    std::fs::write(dir.join("cert.pem"), cert.pem())?;
    std::fs::write(dir.join("key.pem"), key.serialize_pem())?;
    std::fs::write(dir.join("pw"), SMTP_PASSWORD)?;
    Ok(())
}

/// The spool's message files.
fn spooled(spool: &Path) -> Result<Vec<PathBuf>> {
    Ok(std::fs::read_dir(spool)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect())
}

pub(crate) async fn run(n: usize) -> Result<()> {
    let bins = Bins::here()?;
    let dir = tempfile::tempdir()?;
    certificates(dir.path())?;
    let spool = dir.path().join("spool");
    std::fs::create_dir(&spool)?;
    let port_file = dir.path().join("port");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crates/jumpgate/tests/smtpd.py"
    );
    let p = |f: &str| dir.path().join(f);
    let mut smtpd = tokio::process::Command::new("python3")
        .arg(script)
        .arg("--cert")
        .arg(p("cert.pem"))
        .arg("--key")
        .arg(p("key.pem"))
        .arg("--dir")
        .arg(&spool)
        .arg("--port-file")
        .arg(&port_file)
        .args(["--user", "bench", "--password-file"])
        .arg(p("pw"))
        .args(["--lifetime", "3600"])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("python3 with aiosmtpd (pip install aiosmtpd)")?;
    let started = Instant::now();
    let port: u16 = loop {
        if let Ok(s) = std::fs::read_to_string(&port_file) {
            break s.trim().parse()?;
        }
        if let Some(status) = smtpd.try_wait()? {
            bail!("smtpd.py exited ({status}): is aiosmtpd installed?");
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("smtpd.py did not listen");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let config = p("jumpgate.toml");
    std::fs::write(
        &config,
        format!(
            "[smtp]\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"starttls\"\nuser = \"bench\"\npassword_secret = \"smtp-pw\"\nsender = \"jumpgate@example.test\"\nca_file = \"{}\"\n",
            p("ca.pem").display()
        ),
    )?;
    let config = config.to_str().context("config path")?.to_owned();
    let site = start_site_with(bins, None, &["--config", &config]).await?;
    let session: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        site.dir.path().join("jg").join("session.json"),
    )?)?;
    let token = session["token"].as_str().context("no token")?.to_owned();
    let client = jumpgate_client::Client::new(
        site.url.parse()?,
        &Trust::Pinned(site.fingerprint.parse()?),
        None,
    )?
    .with_token(token);
    client
        .vault_put("smtp-pw", SMTP_PASSWORD.as_bytes())
        .await?;
    let out = site
        .jg()
        .args([
            "admin",
            "alerts",
            "add",
            "bench",
            "--event",
            "vault-put",
            "--to",
            "bench@example.test",
            "--max-per-hour",
            "100000",
        ])
        .output()
        .await?;
    if !out.status.success() {
        bail!(
            "jg admin alerts add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    println!(
        "Jumpgate benchmark — {} cores, loopback",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "\nAlert mail: an audited action (vault write through the API) → its mail in the SMTP server's spool (aiosmtpd, STARTTLS + AUTH), one at a time, {n} events"
    );
    // The first mail connects (TLS, AUTH, the password read from the
    // vault): timed apart.
    let mut times = Vec::with_capacity(n);
    let mut first = None;
    for i in 0..=n {
        let before = spooled(&spool)?.len();
        let t0 = Instant::now();
        client
            .vault_put(&format!("bench-{i}"), b"not a secret")
            .await?;
        loop {
            if spooled(&spool)?.len() > before {
                break;
            }
            if t0.elapsed() > Duration::from_secs(60) {
                bail!("no mail for event {i} within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let took = t0.elapsed();
        if i == 0 {
            first = Some(took);
        } else {
            times.push(took);
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "  first mail (connect, STARTTLS, AUTH): {:.1} ms",
        ms(first.unwrap_or_default())
    );
    println!(
        "  event → mail delivered: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(pct(&mut times, 50.0)),
        ms(pct(&mut times, 99.0)),
        ms(pct(&mut times, 100.0))
    );
    drop(site);
    let _ = smtpd.kill().await;
    Ok(())
}
