//! A real `moto_server` (PyPI `moto[server]`, installed by `scripts/test.sh`) on a free
//! loopback port, for the tests of the `aws` provider; stopped by PID when dropped.
//! `AIRLOCK_MOTO` may point at another `moto_server` binary.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Moto {
    child: Child,
    pub url: String,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

/// `moto_server`: `$AIRLOCK_MOTO`, else on the PATH, else the module through `python3`
/// (a pip install may not have put the script on the PATH).
fn command() -> Command {
    if let Ok(p) = std::env::var("AIRLOCK_MOTO") {
        return Command::new(p);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = PathBuf::from(dir).join("moto_server");
        if p.is_file() {
            return Command::new(p);
        }
    }
    let mut c = Command::new("python3");
    c.args(["-m", "moto.server"]);
    c
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

impl Moto {
    /// Starts a fresh server (an empty account) and waits until it answers.
    pub async fn start() -> Moto {
        let mut last = String::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
            let port = free_port();
            let log = dir.path().join("moto.log");
            let out = std::fs::File::create(&log).unwrap_or_else(|e| panic!("log: {e}"));
            let err = out.try_clone().unwrap_or_else(|e| panic!("log: {e}"));
            let child = command()
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::from(out))
                .stderr(Stdio::from(err))
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("starting moto_server (`python3 -m pip install 'moto[server]'`, as scripts/test.sh does, or set AIRLOCK_MOTO): {e}")
                });
            let mut moto = Moto {
                child,
                url: format!("http://127.0.0.1:{port}"),
                log,
                _dir: dir,
            };
            let http = reqwest::Client::new();
            for _ in 0..300 {
                if let Ok(r) = http
                    .get(format!("{}/moto-api/data.json", moto.url))
                    .send()
                    .await
                    && r.status().is_success()
                {
                    return moto;
                }
                if let Ok(Some(_)) = moto.child.try_wait() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            last = std::fs::read_to_string(&moto.log).unwrap_or_default();
            moto.stop();
        }
        panic!("moto_server did not start:\n{last}");
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}
