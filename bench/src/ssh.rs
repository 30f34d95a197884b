//! `--ssh` (alone): the SSH front door (issue #16) next to OpenSSH's own
//! ProxyJump through a plain `sshd` jump host, in the same run and the same
//! interleaved rounds:
//!
//! - `ssh -L` bulk throughput and 64-byte round trips (p50/p99) through
//!   `ssh -N -L … operator+bench@gateway` (one step: a `forward` session),
//!   through `ssh -J operator@gateway bench -L …` (the gateway's inner SSH
//!   server, then the same forward session), and through OpenSSH
//!   (`ssh -J jump target -L …`, two `sshd`s), with the CPU seconds per GiB
//!   of the relaying processes, each one's, and the gateway's over the jump
//!   `sshd`'s paired round by round;
//! - `scp` bulk upload throughput of one file, one step and ProxyJump
//!   through the gateway (an `exec` session of the endpoint's
//!   `sftp-server`) and through OpenSSH's jump host to its target, with the
//!   jump side's CPU seconds per GiB (the gateway; the jump `sshd`) and the
//!   endpoint side's (the agent; the target `sshd`), exited children
//!   included;
//! - connection setup: `ssh HOST true` run one after another, one step,
//!   ProxyJump and OpenSSH's ProxyJump, each connection's wall time from
//!   start to exit (handshakes, logins, a session running `true`) and the
//!   jump side's and the endpoint side's CPU per connection.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::process::Command;

use super::{
    Args, Bins, Route, clock_ticks, echo, free_port, relay_rounds, sink, ssh_route,
    start_site_with, stop, tree_cpu, wait_for_port,
};

pub(crate) async fn run(args: &Args) -> Result<()> {
    let ssh_port = free_port()?;
    let listen = format!("127.0.0.1:{ssh_port}");
    let site = start_site_with(Bins::here()?, None, &["--ssh-listen", &listen]).await?;
    println!(
        "Jumpgate SSH front door benchmark — {} cores, release build, loopback, cipher {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.ssh_cipher
    );
    let dir = site.dir.path().join("front-door");
    std::fs::create_dir_all(&dir)?;
    let id = dir.join("id");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&id)
        .stdout(Stdio::null())
        .status()
        .await?;
    if !st.success() {
        bail!("ssh-keygen failed");
    }
    let out = site
        .jg()
        .args(["ssh-keys", "add"])
        .arg(id.with_extension("pub"))
        .output()
        .await?;
    if !out.status.success() {
        bail!("jg ssh-keys add: {}", String::from_utf8_lossy(&out.stderr));
    }
    let host_key = std::fs::read_to_string(
        site.dir
            .path()
            .join("data")
            .join("ssh_host_ed25519_key.pub"),
    )?;
    let host_key = host_key.trim();
    let known = dir.join("known_hosts");
    std::fs::write(
        &known,
        format!("[127.0.0.1]:{ssh_port} {host_key}\nbench {host_key}\n"),
    )?;
    let config = dir.join("ssh_config");
    std::fs::write(
        &config,
        format!(
            "Host gw\n  HostName 127.0.0.1\n  Port {ssh_port}\n\
             Host bench\n  Ciphers {inner}\n\
             Host *\n  IdentityFile {id}\n  IdentitiesOnly yes\n  BatchMode yes\n  \
             StrictHostKeyChecking yes\n  UserKnownHostsFile {known}\n  LogLevel ERROR\n  \
             Ciphers {cipher}\n  ControlMaster no\n",
            id = id.display(),
            known = known.display(),
            cipher = args.ssh_cipher,
            inner = inner_ciphers(&args.ssh_cipher),
        ),
    )?;
    let (sink_addr, mut results) = sink().await?;
    let echo_addr = echo().await?;
    let relays = [site.gateway.id(), site.agent.id()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>();
    let front_door = |name: &str, dest: &[&str]| {
        let name = name.to_owned();
        let dest: Vec<String> = dest.iter().map(|s| (*s).to_owned()).collect();
        let config = config.clone();
        let relays = relays.clone();
        async move {
            let (bulk_port, echo_port) = (free_port()?, free_port()?);
            let mut ssh = Command::new("ssh")
                .arg("-F")
                .arg(&config)
                .args(["-N", "-o", "ExitOnForwardFailure=yes", "-L"])
                .arg(format!("127.0.0.1:{bulk_port}:{sink_addr}"))
                .arg("-L")
                .arg(format!("127.0.0.1:{echo_port}:{echo_addr}"))
                .args(&dest)
                .kill_on_drop(true)
                .spawn()
                .context("starting ssh")?;
            wait_for_port(echo_port, "ssh -L", &mut ssh).await?;
            let mut pids = relays;
            pids.extend(ssh.id());
            anyhow::Ok(Route {
                name,
                bulk: std::net::SocketAddr::from(([127, 0, 0, 1], bulk_port)),
                echo: std::net::SocketAddr::from(([127, 0, 0, 1], echo_port)),
                pids,
                echo_pids: None,
                _keep: vec![ssh],
            })
        }
    };
    let mut routes = vec![Route {
        name: "direct loopback".into(),
        bulk: sink_addr,
        echo: echo_addr,
        pids: Vec::new(),
        echo_pids: None,
        _keep: Vec::new(),
    }];
    routes.push(
        front_door(
            "jumpgate ssh -L (operator+bench@gw)",
            &["operator+bench@gw"],
        )
        .await?,
    );
    routes.push(
        front_door(
            "jumpgate ssh -J operator@gw bench -L",
            &["-J", "operator@gw", "bench"],
        )
        .await?,
    );
    let openssh = ssh_route(&args.ssh_cipher, sink_addr, echo_addr, site.dir.path()).await?;
    if let Some(r) = openssh {
        routes.push(r);
    }
    relay_rounds(&routes, args, &mut results).await?;
    // scp: the jump side's and the endpoint side's processes (children
    // that exited during the copy included).
    let file = dir.join("payload.bin");
    write_payload(&file, args.ssh_scp_mib)?;
    let dest = tempfile::tempdir()?;
    // OpenSSH's route, when there: its jump and target `sshd`s, and the
    // client config that reaches them.
    let openssh_sshds = routes.get(3).map(sshd_pids);
    let ssh_config = site.dir.path().join("ssh").join("ssh_config");
    let ticks = clock_ticks();
    let gateway_pid = site.gateway.id().into_iter().collect::<Vec<_>>();
    let agent_pid = site.agent.id().into_iter().collect::<Vec<_>>();
    let mut lines = Vec::new();
    for round in 1..=args.rounds {
        let target = dest.path().join(format!("r{round}.bin"));
        let to = |who: &str| format!("{who}:{}", target.display());
        let mut cases: Vec<ScpCase<'_>> = vec![
            (
                "jumpgate scp (operator+bench@gw)",
                Vec::new(),
                to("operator+bench@gw"),
                gateway_pid.clone(),
                agent_pid.clone(),
                config.as_path(),
            ),
            (
                "jumpgate scp via ProxyJump (-W)",
                // scp runs ssh with ClearAllForwardings, which a ProxyJump
                // (ssh -W) inherits and then refuses: the same hop as a
                // ProxyCommand instead.
                vec![
                    "-o".into(),
                    format!(
                        "ProxyCommand=ssh -F {} -W %h:%p operator@gw",
                        config.display()
                    ),
                ],
                to("bench"),
                gateway_pid.clone(),
                agent_pid.clone(),
                config.as_path(),
            ),
        ];
        if let Some((jump, target)) = openssh_sshds.clone() {
            cases.push((
                "OpenSSH scp via ProxyJump",
                vec![
                    "-o".into(),
                    format!("ProxyCommand=ssh -F {} -W %h:%p jump", ssh_config.display()),
                ],
                to("target"),
                jump,
                target,
                ssh_config.as_path(),
            ));
        }
        for (name, options, to, jump, endpoint, config) in cases {
            let jump0 = cpu_with_reaped(&jump, ticks);
            let end0 = cpu_with_reaped(&endpoint, ticks);
            let started = Instant::now();
            let out = Command::new("scp")
                .arg("-F")
                .arg(config)
                // The legacy protocol (`scp -t` run on the far side), as the
                // reference sshd has no sftp subsystem configured.
                .args(["-q", "-O"])
                // Options before the operands: scp's getopt stops at the
                // first operand, so an `-o` after the file would be taken
                // for another file to copy (and the hop never used).
                .args(&options)
                .arg(&file)
                .arg(&to)
                .stdin(Stdio::null())
                .output()
                .await?;
            let took = started.elapsed();
            if !out.status.success() {
                // One path failing must not hide the others' figures.
                println!(
                    "  {name}: FAILED: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                let _ = std::fs::remove_file(&target);
                continue;
            }
            // Children reaped just after the copy still count.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let jump_cpu = cpu_with_reaped(&jump, ticks) - jump0;
            let end_cpu = cpu_with_reaped(&endpoint, ticks) - end0;
            let gib = (args.ssh_scp_mib as f64) / 1024.0;
            let mbps = args.ssh_scp_mib as f64 * 8.0 * 1.048_576 / took.as_secs_f64();
            let same = std::fs::metadata(&target)?.len() == args.ssh_scp_mib << 20;
            std::fs::remove_file(&target)?;
            if !same {
                bail!("{name}: the copy has the wrong size");
            }
            let line = format!(
                "round {round}/{}: {name:<36} {:7.1} Mbit/s  jump CPU {:5.2} s/GiB  endpoint CPU {:5.2} s/GiB",
                args.rounds,
                mbps,
                jump_cpu / gib,
                end_cpu / gib
            );
            eprintln!("{line}");
            lines.push((name.to_owned(), mbps, jump_cpu / gib, end_cpu / gib));
        }
    }
    println!(
        "scp upload of {} MiB, medians of {} round(s):",
        args.ssh_scp_mib, args.rounds
    );
    let mut names: Vec<String> = lines.iter().map(|l| l.0.clone()).collect();
    names.dedup();
    names.sort();
    names.dedup();
    for n in names {
        let of = |f: fn(&(String, f64, f64, f64)) -> f64| {
            super::median(lines.iter().filter(|l| l.0 == n).map(f).collect())
        };
        println!(
            "  {n:<36} {:8.1} Mbit/s   jump side {:5.2} CPU-s/GiB   endpoint side {:5.2} CPU-s/GiB",
            of(|l| l.1),
            of(|l| l.2),
            of(|l| l.3)
        );
    }
    if args.ssh_connects > 0 {
        let mut cases: Vec<ConnectCase<'_>> = vec![
            (
                "jumpgate one step (operator+bench@gw)",
                vec!["operator+bench@gw".into()],
                gateway_pid.clone(),
                agent_pid.clone(),
                config.as_path(),
            ),
            (
                "jumpgate ProxyJump (-J operator@gw)",
                vec!["-J".into(), "operator@gw".into(), "bench".into()],
                gateway_pid.clone(),
                agent_pid.clone(),
                config.as_path(),
            ),
        ];
        if let Some((jump, target)) = openssh_sshds {
            cases.push((
                "OpenSSH ProxyJump",
                vec!["target".into()],
                jump,
                target,
                ssh_config.as_path(),
            ));
        }
        connect_rounds(&cases, args, ticks).await?;
    }
    drop(routes);
    stop(site).await;
    Ok(())
}

/// One connection route: its name, ssh's arguments before the command,
/// the jump side's and the endpoint side's processes, the client config.
type ConnectCase<'a> = (&'a str, Vec<String>, Vec<u32>, Vec<u32>, &'a Path);

/// `ssh … true`, `args.ssh_connects` times per route and round, the routes
/// interleaved by round: medians of the connections' wall times and of
/// the rounds' CPU per connection.
async fn connect_rounds(cases: &[ConnectCase<'_>], args: &Args, ticks: f64) -> Result<()> {
    let n = args.ssh_connects;
    // (name, wall ms of each connection, jump CPU ms/conn, endpoint CPU ms/conn)
    let mut rows: Vec<(&str, Vec<f64>, f64, f64)> = Vec::new();
    for round in 1..=args.rounds {
        for (name, dest, jump, endpoint, config) in cases {
            let jump0 = cpu_with_reaped(jump, ticks);
            let end0 = cpu_with_reaped(endpoint, ticks);
            let mut walls = Vec::with_capacity(n);
            for _ in 0..n {
                let started = Instant::now();
                let out = Command::new("ssh")
                    .arg("-F")
                    .arg(config)
                    .args(dest)
                    .arg("true")
                    .stdin(Stdio::null())
                    .output()
                    .await?;
                walls.push(started.elapsed().as_secs_f64() * 1e3);
                if !out.status.success() {
                    bail!(
                        "{name}: ssh failed: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                }
            }
            // Children reaped just after the last connection still count.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let per = |cpu: f64| cpu * 1e3 / n as f64;
            let jump_ms = per(cpu_with_reaped(jump, ticks) - jump0);
            let end_ms = per(cpu_with_reaped(endpoint, ticks) - end0);
            eprintln!(
                "round {round}/{}: {name:<38} p50 {:6.1} ms  jump CPU {:5.1} ms/conn  endpoint CPU {:5.1} ms/conn",
                args.rounds,
                super::median(walls.clone()),
                jump_ms,
                end_ms
            );
            rows.push((name, walls, jump_ms, end_ms));
        }
    }
    println!(
        "ssh HOST true, {n} connection(s) per route in each of {} round(s) (wall: all connections; CPU: medians of the rounds):",
        args.rounds
    );
    for (name, ..) in cases {
        let of = rows.iter().filter(|r| r.0 == *name);
        let mut walls: Vec<f64> = of.clone().flat_map(|r| r.1.iter().copied()).collect();
        walls.sort_by(f64::total_cmp);
        let p90 = walls
            .get((walls.len() * 9 / 10).min(walls.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN);
        println!(
            "  {name:<38} p50 {:6.1} ms  p90 {:6.1} ms   jump side {:5.1} CPU-ms/conn   endpoint side {:5.1} CPU-ms/conn",
            super::median(walls.clone()),
            p90,
            super::median(of.clone().map(|r| r.2).collect()),
            super::median(of.map(|r| r.3).collect()),
        );
    }
    Ok(())
}

/// One scp path: its name, scp's options (the hop), its destination, the
/// jump side's and the endpoint side's processes, the client config.
type ScpCase<'a> = (&'a str, Vec<String>, String, Vec<u32>, Vec<u32>, &'a Path);

/// The OpenSSH route's `sshd`s: (jump host, target), from its processes
/// (two `sshd`s, then the client).
fn sshd_pids(route: &Route) -> (Vec<u32>, Vec<u32>) {
    let jump = route.pids.first().copied().into_iter().collect();
    let target = route.pids.get(1).copied().into_iter().collect();
    (jump, target)
}

/// CPU seconds of `roots` and their live descendants, plus what their
/// exited (reaped) children used.
fn cpu_with_reaped(roots: &[u32], ticks: f64) -> f64 {
    let reaped: u64 = roots
        .iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .map(|stat| {
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            let f: Vec<&str> = rest.split_whitespace().collect();
            // After the name: cutime(16) cstime(17) are fields 13 and 14.
            let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            num(13) + num(14)
        })
        .sum();
    tree_cpu(roots, ticks) + reaped as f64 / ticks
}

/// `mib` MiB that do not compress.
fn write_payload(path: &Path, mib: u64) -> Result<()> {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..mib {
        for b in &mut block {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = (x >> 32) as u8;
        }
        f.write_all(&block)?;
    }
    f.flush()?;
    Ok(())
}

/// The ciphers for ProxyJump's inner hop (`Host bench`): the gateway's
/// inner server offers AES-GCM only, so a list without it gets
/// aes128-gcm, as a user's config would need.
fn inner_ciphers(list: &str) -> String {
    if list.split(',').any(|c| c.ends_with("-gcm@openssh.com")) {
        list.to_owned()
    } else {
        format!("{list},aes128-gcm@openssh.com")
    }
}
