//! What classifying a long command line costs: 1 KB, 16 KB and 64 KB lines of everyday
//! commands (builds, greps, git, kubectl reads, pipes, substitutions, loops) joined by
//! `;`, `&&` and newlines, classified in a workspace. The time per KB should stay flat as
//! the line grows: classification is linear in the line's length.
//!
//! Run with `cargo bench --workspace --bench classify`.

use airlock_shell::classify_in;
use criterion::{BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;

/// Commands an agent strings together; the line repeats them until it is long enough.
const COMMANDS: &[&str] = &[
    "cargo build --workspace",
    "grep -rn TODO src | head -20",
    "git status --short",
    "ls -la target/debug",
    "kubectl get pods -n payments -o wide",
    "echo \"$(date +%F) build done\" >> build/log.txt",
    "NS=staging; kubectl get deploy -n $NS",
    "for f in src/*.rs; do wc -l \"$f\"; done",
    "find . -name '*.tmp' -delete",
    "cat Cargo.toml | grep version",
    "awk '{print $1}' access.log | sort | uniq -c",
    "sed -n '1,20p' README.md",
    "git diff --stat HEAD~1",
    "npm test -- --watch=false",
    "rm -rf target/tmp",
    "echo ${X:-default}",
    "python3 -c 'print(1+2)'",
    "docker ps --format '{{.Names}}'",
    "mkdir -p build/out && cp README.md build/out/",
    "export RUST_LOG=debug",
];

/// A line of about `bytes` bytes.
fn line(bytes: usize) -> String {
    let seps = ["; ", " && ", "\n"];
    let mut out = String::with_capacity(bytes + 64);
    let mut i = 0;
    while out.len() < bytes {
        if i > 0 {
            out.push_str(seps[i % seps.len()]);
        }
        out.push_str(COMMANDS[i % COMMANDS.len()]);
        i += 1;
    }
    out
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    let mut g = c.benchmark_group("classify_in");
    for kb in [1usize, 16, 64] {
        let text = line(kb * 1024);
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{kb}KB")),
            &text,
            |b, t| b.iter(|| classify_in(black_box(t), Some("/home/dev/project"))),
        );
    }
    g.finish();
    c.final_summary();
}
