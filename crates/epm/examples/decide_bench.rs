//! Policy decision time with a large policy (issue #14's figure: p99 ≤ 100 µs
//! with 10,000 rules).
//!
//! ```text
//! cargo run --release -p jumpgate-epm --example decide_bench [RULES] [SAMPLES] [GLOB_EVERY]
//! ```
//!
//! The policy has RULES rules (default 10,000): most name one application
//! by exact path, one in ten carries an argument pattern, one in GLOB_EVERY (default 50) a
//! glob path, and the scopes mix users, local groups and endpoint groups.
//! Each sample decides one program chosen at random — a hit at any place
//! in the rule list, or a miss that falls through to the default — and the
//! time of every single decision is kept, so the percentiles are real.

use std::time::Instant;

use jumpgate_epm::engine::{Caller, Engine, Program};
use jumpgate_epm::policy::{Action, Application, Policy, Rule, Scope};

fn main() {
    let mut args = std::env::args().skip(1);
    let rules: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let samples: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let glob_every: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(50)
        .max(1);

    let mut policy = Policy {
        default: Action::Block,
        ..Policy::default()
    };
    for i in 0..rules {
        let path = if i % glob_every == glob_every - 1 {
            format!("/opt/vendor{i}/*/bin/tool*")
        } else {
            format!("/usr/local/bin/tool{i}")
        };
        policy.applications.push(Application {
            name: format!("app{i}"),
            path,
            sha256: None,
            args: (i % 10 == 3).then(|| "^(--check|--apply [a-z0-9-]+)$".to_owned()),
            package: None,
        });
        let action = Action::ALL[i % Action::ALL.len()];
        policy.rules.push(Rule {
            name: format!("rule{i}"),
            applications: vec![format!("app{i}")],
            scope: Scope {
                endpoint_groups: if i % 7 == 0 {
                    vec!["linux".into()]
                } else {
                    Vec::new()
                },
                users: if i % 3 == 0 {
                    vec![format!("user{}", i % 100)]
                } else {
                    Vec::new()
                },
                groups: if i % 3 == 1 {
                    vec!["staff".into(), format!("team{}", i % 20)]
                } else {
                    Vec::new()
                },
            },
            action,
            approval_timeout: (action == Action::ElevateWithApproval).then(|| "5m".to_owned()),
        });
    }
    policy.validate().expect("the generated policy is valid");

    let t = Instant::now();
    let engine = Engine::compile(&policy, &["linux".into(), "servers".into()]);
    let compile = t.elapsed();

    let caller = Caller {
        user: "user42".into(),
        groups: vec!["users".into(), "staff".into(), "team3".into()],
    };
    // A small xorshift: no rand dependency, same sequence every run.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let programs: Vec<Program> = (0..4096)
        .map(|_| {
            let i = (next() % (rules as u64 + rules as u64 / 4)) as usize;
            let path = if i >= rules {
                format!("/usr/bin/unlisted{i}")
            } else if i % glob_every == glob_every - 1 {
                format!("/opt/vendor{i}/x/bin/tool-a")
            } else {
                format!("/usr/local/bin/tool{i}")
            };
            Program {
                path,
                sha256: Some("ab".repeat(32)),
                args: vec!["--apply".into(), "blue-green".into()],
            }
        })
        .collect();

    let mut times = Vec::with_capacity(samples);
    let mut hits = 0usize;
    for s in 0..samples {
        let p = &programs[s % programs.len()];
        let t = Instant::now();
        let d = engine.decide(&caller, p);
        times.push(t.elapsed().as_nanos() as u64);
        hits += usize::from(d.rule.is_some());
    }
    times.sort_unstable();
    let pct = |q: f64| times[((times.len() as f64 - 1.0) * q) as usize] as f64 / 1000.0;
    println!(
        "epm decide: {} rules ({} apply here, one in {} a glob), compile {:.1} ms; {} decisions ({} matched a rule): p50 {:.2} µs, p99 {:.2} µs, p99.9 {:.2} µs, max {:.2} µs",
        rules,
        engine.rule_count(),
        glob_every,
        compile.as_secs_f64() * 1000.0,
        samples,
        hits,
        pct(0.50),
        pct(0.99),
        pct(0.999),
        pct(1.0),
    );
}
