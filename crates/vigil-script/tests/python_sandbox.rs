//! Issue 22, finding 6: the Python sandbox is an OS boundary, not the driver's audit hook.
//!
//! Every script here first turns the hook off with the review's three lines (and checks
//! that it is off: it imports `socket`, which the hook refuses), then performs one escape
//! the review performed. Each must fail because of the kernel: namespaces, the private
//! read-only root, seccomp and Landlock (`crates/vigil-script/src/sandbox.rs`).
//!
//! On a host without the required kernel features the tests print why and pass by skipping;
//! with `VIGIL_REQUIRE_SANDBOX=1` they fail instead.

use serde_json::{Value, json};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vigil_core::Event;
use vigil_script::{
    Language, Lists, Manifest, PythonConfig, ScriptEngine, ScriptLimits, ScriptSet,
};

/// The review's three lines, which turn the driver's audit hook off.
const DISABLE_HOOK: &str = "import sys\n\
    m = sys.modules[\"__main__\"]; m._blocked_prefixes = (); m._blocked_imports = set(); \
    m._stdlib = (\"/\",)\n";

/// The tests of this file one at a time, so that "this test's workers" can be told apart
/// from the others' in /proc.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn required() -> bool {
    std::env::var("VIGIL_REQUIRE_SANDBOX").is_ok_and(|v| v == "1")
}

fn limits() -> ScriptLimits {
    ScriptLimits {
        default_timeout_ms: 3_000,
        python: PythonConfig {
            enabled: true,
            memory_mb: 256,
            ..PythonConfig::default()
        },
        ..ScriptLimits::default()
    }
}

/// A script set with Python on, or `None` (printed) when this host cannot sandbox it.
fn sandboxed_set() -> Option<ScriptSet> {
    let limits = limits();
    let why = match vigil_script::sandbox::status(&limits.python) {
        Ok(s) if s.missing.is_empty() && s.pid_namespace && s.mount_namespace && s.seccomp => {
            return Some(ScriptSet::new(Arc::new(ScriptEngine::new(
                limits,
                Lists::default(),
            ))));
        }
        Ok(s) => format!("the sandbox is incomplete here: {}", s.summary()),
        Err(e) => e.to_string(),
    };
    assert!(
        !required(),
        "VIGIL_REQUIRE_SANDBOX=1 but the Python sandbox is unavailable: {why}"
    );
    eprintln!("SKIPPED: the Python worker sandbox is unavailable on this host: {why}");
    None
}

fn manifest(name: &str) -> Manifest {
    Manifest {
        name: name.into(),
        description: String::new(),
        categories: vec!["*".into()],
        config: serde_json::Map::new(),
        timeout_ms: None,
        agent_tags: vec![],
        language: Language::Python,
    }
}

/// A hostile script: the hook off, then `body` (indented by 4) as `attack(DATA)`, whose
/// return value or exception is the result: `{"escaped": true, "value": ...}` when it
/// returned, `{"escaped": false, "error": ...}` when it raised.
fn hostile(body: &str) -> String {
    let body: String = body.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        r#"{DISABLE_HOOK}
import json
def attack(DATA):
{body}
def Start_Analysis(q, DATA):
    import socket  # refused by the hook: proves it is off
    try:
        q.put({{'escaped': True, 'value': repr(attack(json.loads(DATA)))}})
    except BaseException as e:
        q.put({{'escaped': False, 'error': f'{{type(e).__name__}}: {{e}}'}})
"#
    )
}

fn event(v: Value) -> Arc<Event> {
    Arc::new(Event::from_input(v, chrono::Utc::now()).unwrap())
}

/// Loads `source` as `name` and runs it once on `data`; the result map.
fn run_one(set: &ScriptSet, name: &str, source: &str, data: Value) -> Value {
    set.load(manifest(name), 1, source, true, None)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let report = set.analyze(&event(data));
    match report.results.get(name) {
        Some(r) => r.clone(),
        None => json!({"escaped": false, "error": format!("{:?}", report.errors.get(name))}),
    }
}

fn assert_blocked(what: &str, r: &Value) {
    assert_eq!(r["escaped"], false, "{what} escaped the sandbox: {r}");
    eprintln!("{what}: blocked ({})", r["error"]);
}

/// A world-readable directory of our own (0755), with a world-readable file (0644)
/// holding a fake secret: readable by `nobody` on the host, so only the sandbox can stop
/// a worker from reading it.
struct SecretDir(PathBuf);

impl SecretDir {
    fn new(tag: &str) -> SecretDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!(
            "vigil-sbx-{tag}-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let file = dir.join("vigil.toml");
        std::fs::write(
            &file,
            "[auth]\njwt_hs256_secret = \"FAKE-SECRET-d1f0c2b7-finding6\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        SecretDir(dir)
    }

    fn file(&self) -> PathBuf {
        self.0.join("vigil.toml")
    }
}

impl Drop for SecretDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_sandbox_status_reports_every_layer() {
    let _serial = serial();
    let Some(_) = sandboxed_set() else { return };
    let s = vigil_script::sandbox::status(&limits().python).unwrap();
    eprintln!("sandbox: {}", s.summary());
    assert!(s.pid_namespace && s.mount_namespace && s.network_namespace && s.seccomp);
    assert!(s.rlimits && !s.weak && s.missing.is_empty());
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        assert_eq!(s.run_as_uid, Some(65534));
    }
    // Landlock is reported when the kernel has it.
    // SAFETY: landlock_create_ruleset with the VERSION flag only returns a number.
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    };
    assert_eq!(i64::from(s.landlock_abi), abi.max(0), "{s:?}");
}

#[test]
fn with_the_hook_off_etc_passwd_and_a_world_readable_secret_are_unreadable() {
    let _serial = serial();
    let Some(set) = sandboxed_set() else { return };
    let secret = SecretDir::new("read");
    // The control: the file is there and world-readable on the host.
    assert!(
        std::fs::read_to_string(secret.file())
            .unwrap()
            .contains("FAKE-SECRET")
    );
    let r = run_one(
        &set,
        "read_passwd",
        &hostile("return open('/etc/passwd').read()"),
        json!({}),
    );
    assert_blocked("reading /etc/passwd", &r);
    let r = run_one(
        &set,
        "read_secret",
        &hostile("return open(DATA['path']).read()"),
        json!({"path": secret.file()}),
    );
    assert_blocked("reading a world-readable secret", &r);
    let r = run_one(
        &set,
        "read_secret_os",
        &hostile("import os\nfd = os.open(DATA['path'], os.O_RDONLY)\nreturn os.read(fd, 100)"),
        json!({"path": secret.file()}),
    );
    assert_blocked("os.open of the secret", &r);
    // What it can read is the interpreter's own library: the hook is really off.
    let r = run_one(
        &set,
        "read_stdlib",
        &hostile("import os\nreturn open(os.__file__).read(20)"),
        json!({}),
    );
    assert_eq!(r["escaped"], true, "the control read failed: {r}");
}

#[test]
fn with_the_hook_off_listing_the_root_shows_nothing_of_the_host() {
    let _serial = serial();
    let Some(set) = sandboxed_set() else { return };
    let r = run_one(
        &set,
        "list_root",
        &hostile("import os\nreturn sorted(os.listdir('/'))"),
        json!({}),
    );
    if r["escaped"] == true {
        // Without Landlock the private root is listable, and holds only the interpreter.
        let listed = r["value"].as_str().unwrap();
        for host_only in [
            "'home'", "'proc'", "'tmp'", "'var'", "'root'", "'dev'", "'sys'",
        ] {
            assert!(!listed.contains(host_only), "the host's / leaked: {listed}");
        }
        let s = vigil_script::sandbox::status(&limits().python).unwrap();
        assert_eq!(
            s.landlock_abi, 0,
            "Landlock should refuse listing /: {listed}"
        );
    } else {
        assert_blocked("listing /", &r);
    }
    let r = run_one(
        &set,
        "list_etc",
        &hostile("import os\nreturn sorted(os.listdir('/etc'))"),
        json!({}),
    );
    if r["escaped"] == true {
        assert!(
            !r["value"].as_str().unwrap().contains("passwd"),
            "the host's /etc leaked: {r}"
        );
    }
}

#[test]
fn with_the_hook_off_no_process_can_be_started() {
    let _serial = serial();
    let Some(set) = sandboxed_set() else { return };
    let r = run_one(
        &set,
        "system",
        &hostile(
            "import os\nrc = os.system('exit 7')\nif rc != 7 << 8: raise OSError(f'system returned {rc}')\nreturn rc",
        ),
        json!({}),
    );
    assert_blocked("os.system", &r);
    let r = run_one(
        &set,
        "subprocess",
        &hostile(
            "import subprocess\nreturn subprocess.run([sys.executable, '-c', 'pass']).returncode",
        ),
        json!({}),
    );
    assert_blocked("subprocess.run", &r);
    let r = run_one(
        &set,
        "fork",
        &hostile("import os\npid = os.fork()\nif pid == 0:\n    os._exit(0)\nreturn pid"),
        json!({}),
    );
    assert_blocked("os.fork", &r);
    let r = run_one(
        &set,
        "posix_spawn",
        &hostile(
            "import os\nreturn os.posix_spawn(sys.executable, [sys.executable, '-c', 'pass'], {})",
        ),
        json!({}),
    );
    assert_blocked("os.posix_spawn", &r);
    let r = run_one(
        &set,
        "exec",
        &hostile("import os\nos.execv(sys.executable, [sys.executable, '-c', 'pass'])"),
        json!({}),
    );
    assert_blocked("os.execv", &r);
}

#[test]
fn with_the_hook_off_ctypes_reaches_no_system_call_that_matters() {
    let _serial = serial();
    let Some(set) = sandboxed_set() else { return };
    let secret = SecretDir::new("ctypes");
    // Native code is possible (ctypes loads); every call that would escape fails in the
    // kernel. A call that succeeds is reported as an escape.
    let body = r#"import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
calls = {
  'open_passwd': lambda: libc.open(b'/etc/passwd', 0),
  'open_secret': lambda: libc.open(DATA['path'].encode(), 0),
  'socket_inet': lambda: libc.socket(2, 1, 0),
  'socket_unix': lambda: libc.socket(1, 1, 0),
  'syscall_socket': lambda: libc.syscall(41, 2, 1, 0),
  'fork': lambda: libc.fork(),
  'syscall_fork': lambda: libc.syscall(57),
  'unshare': lambda: libc.unshare(0x10000000),
  'mount': lambda: libc.mount(b'none', b'/', b'tmpfs', 0, None),
  'chroot': lambda: libc.chroot(b'/'),
  'ptrace': lambda: libc.ptrace(16, 2, 0, 0),
  'kill_init': lambda: libc.kill(2, 19),
  'setuid0': lambda: libc.setuid(0),
}
escaped = {}
for name, call in calls.items():
    rc = call()
    if rc >= 0 and not (name == 'fork' and rc == 0):
        escaped[name] = rc
    elif name == 'fork' and rc == 0:
        os._exit(0)
if escaped:
    return escaped
raise PermissionError('every call failed')
"#;
    let r = run_one(
        &set,
        "ctypes",
        &hostile(body),
        json!({"path": secret.file()}),
    );
    assert_blocked("system calls through ctypes", &r);
    assert_eq!(r["error"], "PermissionError: every call failed", "{r}");
}

#[test]
fn with_the_hook_off_no_socket_can_be_made_or_reached() {
    let _serial = serial();
    use std::os::unix::fs::PermissionsExt;
    let Some(set) = sandboxed_set() else { return };
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    tcp.set_nonblocking(true).unwrap();
    let port = tcp.local_addr().unwrap().port();
    let dir = SecretDir::new("unix");
    let sock_path = dir.0.join("control.sock");
    let unix = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    unix.set_nonblocking(true).unwrap();
    // Anyone may connect to it on the host.
    std::fs::set_permissions(&sock_path, std::fs::Permissions::from_mode(0o777)).unwrap();

    let r = run_one(
        &set,
        "inet",
        &hostile(
            "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\ns.connect(('127.0.0.1', DATA['port']))\nreturn 'connected'",
        ),
        json!({"port": port}),
    );
    assert_blocked("an AF_INET connection to 127.0.0.1", &r);
    let r = run_one(
        &set,
        "unix",
        &hostile(
            "import socket\ns = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\ns.connect(DATA['path'])\nreturn 'connected'",
        ),
        json!({"path": sock_path}),
    );
    assert_blocked("an AF_UNIX connection to a listening filesystem socket", &r);
    let r = run_one(
        &set,
        "socketpair",
        &hostile("import socket\nreturn socket.socketpair()"),
        json!({}),
    );
    assert_blocked("socketpair", &r);
    let r = run_one(
        &set,
        "other_families",
        &hostile(
            "import socket\nfor fam in (socket.AF_INET6, socket.AF_NETLINK, socket.AF_PACKET):\n    try:\n        socket.socket(fam, socket.SOCK_RAW if fam == socket.AF_PACKET else socket.SOCK_DGRAM)\n        return f'made a socket of family {fam}'\n    except PermissionError:\n        pass\nraise PermissionError('no family')",
        ),
        json!({}),
    );
    assert_blocked("AF_INET6/AF_NETLINK/AF_PACKET sockets", &r);
    std::thread::sleep(Duration::from_millis(100));
    assert!(tcp.accept().is_err(), "the TCP listener got a connection");
    assert!(unix.accept().is_err(), "the Unix listener got a connection");
}

/// Processes whose command line holds `marker`.
fn processes_with(marker: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let mut cmdline = Vec::new();
        if std::fs::File::open(entry.path().join("cmdline"))
            .and_then(|mut f| f.read_to_end(&mut cmdline))
            .is_ok()
            && String::from_utf8_lossy(&cmdline).contains(marker)
        {
            found.push(pid);
        }
    }
    found
}

#[test]
fn with_the_hook_off_a_setsid_grandchild_does_not_outlive_the_worker() {
    let _serial = serial();
    let Some(set) = sandboxed_set() else { return };
    let marker = format!("vigil-finding6-orphan-{}", std::process::id());
    // Every way to leave a process behind: double fork with setsid, posix_spawn, a
    // thread that forks. Then the run hangs, so the server kills the worker.
    let body = r#"import os, threading, time
argv = [sys.executable, '-c', 'import time; time.sleep(120)', DATA['marker']]
def double_fork():
    try:
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execv(sys.executable, argv)
            os._exit(0)
    except OSError:
        pass
def spawn():
    try:
        os.posix_spawn(sys.executable, argv, {}, setsid=True)
    except OSError:
        pass
double_fork()
spawn()
threading.Thread(target=double_fork).start()
time.sleep(60)
"#;
    let mut limits = limits();
    limits.default_timeout_ms = 1_000;
    drop(set);
    let set2 = ScriptSet::new(Arc::new(ScriptEngine::new(limits, Lists::default())));
    let before: Vec<u32> = our_workers().into_iter().map(|(p, _)| p).collect();
    set2.load(manifest("orphans"), 1, &hostile(body), true, None)
        .unwrap();
    let worker: Vec<u32> = our_workers()
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| !before.contains(p))
        .collect();
    assert_eq!(worker.len(), 1, "the new worker: {worker:?}");
    let pid_ns = std::fs::read_link(format!("/proc/{}/ns/pid", worker[0])).unwrap();
    let report = set2.analyze(&event(json!({"marker": marker})));
    assert_eq!(
        report.errors.get("orphans").map(|e| e.code),
        Some("timeout"),
        "{report:?}"
    );
    // The worker was killed at the timeout; nothing it started may remain, and nothing
    // at all in its PID namespace.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let mut left = processes_with(&marker);
        left.extend(in_pid_namespace(&pid_ns));
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "processes started by a killed worker survive: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // And none after the script set (the server's side) is gone.
    drop(set2);
    std::thread::sleep(Duration::from_millis(200));
    assert!(processes_with(&marker).is_empty());
}

/// Processes in the PID namespace `ns` (a `/proc/<pid>/ns/pid` link).
fn in_pid_namespace(ns: &Path) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            (std::fs::read_link(e.path().join("ns/pid")).ok()? == ns).then_some(pid)
        })
        .collect()
}

/// Host pids of this test process's Python workers (children of their supervisors,
/// which are our children).
fn our_workers() -> Vec<(u32, char)> {
    let me = std::process::id();
    let stat = |pid: u32| -> Option<(char, u32)> {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = &s[s.rfind(')')? + 2..];
        let mut f = rest.split(' ');
        let state = f.next()?.chars().next()?;
        let ppid = f.next()?.parse().ok()?;
        Some((state, ppid))
    };
    processes_with("Vigil's Python worker")
        .into_iter()
        .filter_map(|pid| {
            let (state, ppid) = stat(pid)?;
            let (_, grand) = stat(ppid)?;
            (grand == me).then_some((pid, state))
        })
        .collect()
}

#[test]
fn with_the_hook_off_another_worker_cannot_be_signalled() {
    let _serial = serial();
    let Some(set) = sandboxed_set() else { return };
    set.load(
        manifest("victim"),
        1,
        "def Start_Analysis(q, DATA):\n    q.put({'alive': True})\n",
        true,
        None,
    )
    .unwrap();
    let victims: Vec<u32> = our_workers().into_iter().map(|(pid, _)| pid).collect();
    assert!(!victims.is_empty(), "the victim's worker is not visible");
    // Every pid the attacker could aim at: the victim's host pids, every small pid of its
    // own namespace but itself, and everything (-1).
    let body = r#"import os, signal
hit = []
for pid in DATA['pids'] + list(range(2, 300)) + [-1, 0]:
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        try:
            os.kill(pid, sig)
            hit.append((pid, sig))
        except OSError:
            pass
if hit:
    return hit
raise PermissionError('no signal was delivered')
"#;
    set.load(manifest("attacker"), 1, &hostile(body), true, None)
        .unwrap();
    let report = set.analyze(&event(json!({"pids": victims})));
    assert_blocked("signalling other workers", &report.results["attacker"]);
    // The victim still answers, and no worker of ours is stopped.
    let report = set.analyze(&event(json!({"pids": []})));
    assert_eq!(report.results["victim"]["alive"], true, "{report:?}");
    for (pid, state) in our_workers() {
        assert_ne!(state, 'T', "worker {pid} was stopped");
    }
    // When the script set goes (server shutdown), its workers go too.
    drop(set);
    let deadline = Instant::now() + Duration::from_secs(3);
    while !our_workers().is_empty() {
        assert!(
            Instant::now() < deadline,
            "workers outlive their script set: {:?}",
            our_workers()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_interpreter_the_worker_uid_cannot_reach_on_the_host_still_runs() {
    let _serial = serial();
    // CI's interpreter for other tests is a venv under /root (mode 0700): the sandbox's
    // own root exposes it read-only, so `nobody` can run it.
    let Some(python) = std::env::var_os("VIGIL_TEST_PYTHON") else {
        eprintln!("SKIPPED: VIGIL_TEST_PYTHON is not set");
        return;
    };
    let python = PathBuf::from(python);
    if !python.is_absolute() || !Path::new(&python).exists() {
        eprintln!("SKIPPED: VIGIL_TEST_PYTHON={python:?} is not an absolute path to a file");
        return;
    }
    let Some(_) = sandboxed_set() else { return };
    let mut limits = limits();
    limits.python.interpreter = python.to_string_lossy().into_owned();
    let set = ScriptSet::new(Arc::new(ScriptEngine::new(limits, Lists::default())));
    let r = run_one(
        &set,
        "venv",
        &hostile("return open('/etc/passwd').read()"),
        json!({}),
    );
    assert_blocked("reading /etc/passwd from a venv interpreter", &r);
}
