//! The OS boundary around Python workers (issue 22, finding 6).
//!
//! A worker is started in three steps, all between `fork` and `exec` of the server's
//! `Command` (system calls only, no allocation: everything is prepared by the parent):
//!
//! 1. The forked child (the *supervisor*) starts a session, unshares a PID, mount,
//!    network, IPC and UTS namespace (and a user namespace when the server is not root),
//!    and forks again.
//! 2. The grandchild (the *worker*) is PID 1 of its own PID namespace: when it dies, the
//!    kernel kills everything it started. It dies with its supervisor (`PR_SET_PDEATHSIG`),
//!    so killing the process the server holds kills the whole namespace. It then builds a
//!    root of its own: a tmpfs with read-only bind mounts of the interpreter, its shared
//!    libraries and its standard library only, `pivot_root`s into it and detaches the host's
//!    tree. It drops to `run_as_uid` (root server), sets resource limits and
//!    `no_new_privs`, restricts itself with Landlock where the kernel has it (read-only
//!    access to the exposed paths, no TCP, no signals or abstract sockets outside), and
//!    installs a seccomp-bpf filter: no sockets of any family, no `fork`/`vfork`/non-thread
//!    `clone`, no `execve` but the one it is about to make, no signals but to itself, no
//!    `ptrace`, mounts, namespaces, `io_uring`, BPF, keyrings or module loading.
//! 3. The supervisor closes every descriptor but the worker's stdout, waits for the worker
//!    and ends as it ended (same exit code or signal), so the server sees the worker's
//!    fate. When the server goes away (stdout's reader is closed) it kills the worker.
//!
//! Which layers the kernel gives is found by [`status`]: it starts the interpreter once in
//! the sandbox. A required layer that fails (PID, mount or network namespace, seccomp)
//! makes Python refuse to run unless `[scripts.python] allow_weak_sandbox = true`; the
//! layer is then left out and the status says so.

use crate::ScriptError;
use crate::python::PythonConfig;
use serde::Serialize;
use std::collections::HashSet;
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libc::{c_char, c_int, c_ulong};

/// The worker's program: `python3 -I -S -B -c <driver>`.
pub(crate) const DRIVER: &str = include_str!("python_driver.py");
const PY_FLAGS: [&str; 4] = ["-I", "-S", "-B", "-c"];

/// Which isolation layers Python workers get on this machine, as found at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SandboxStatus {
    /// The worker is PID 1 of its own PID namespace: whatever it starts dies with it, and
    /// no other process (another worker, the server) is visible to it.
    pub pid_namespace: bool,
    /// The worker's root is a tmpfs of read-only bind mounts of the interpreter and its
    /// libraries only (`pivot_root`; the host's tree is detached).
    pub mount_namespace: bool,
    /// An empty network namespace (no interfaces but a down loopback).
    pub network_namespace: bool,
    /// Own IPC and UTS namespaces (System V IPC, hostname).
    pub ipc_namespace: bool,
    /// A user namespace, used when the server is not root to make the others.
    pub user_namespace: bool,
    /// The seccomp-bpf filter (no sockets, processes, exec, foreign signals, ...).
    pub seccomp: bool,
    /// The Landlock ABI version applied, 0 when the kernel has none.
    pub landlock_abi: u32,
    /// The uid workers run as (a root server drops to it), `None` when unchanged.
    pub run_as_uid: Option<u32>,
    /// Resource limits (address space, CPU, no file writes, no core, few descriptors).
    pub rlimits: bool,
    /// Required layers this kernel did not give, with why.
    pub missing: Vec<String>,
    /// Running anyway without them (`allow_weak_sandbox = true`).
    pub weak: bool,
}

impl SandboxStatus {
    /// One line for a log: which layers are active.
    pub fn summary(&self) -> String {
        let on = |b: bool| if b { "on" } else { "OFF" };
        format!(
            "pid_ns={} mount_ns={} net_ns={} ipc_ns={} user_ns={} seccomp={} landlock={} \
             uid={} rlimits={}{}",
            on(self.pid_namespace),
            on(self.mount_namespace),
            on(self.network_namespace),
            on(self.ipc_namespace),
            if self.user_namespace { "on" } else { "unused" },
            on(self.seccomp),
            if self.landlock_abi > 0 {
                format!("v{}", self.landlock_abi)
            } else {
                "unavailable".into()
            },
            self.run_as_uid
                .map_or_else(|| "unchanged".into(), |u| u.to_string()),
            on(self.rlimits),
            if self.missing.is_empty() {
                String::new()
            } else {
                format!(" missing=[{}]", self.missing.join("; "))
            },
        )
    }
}

/// Finds (once per interpreter, uid and weak setting) and reports the sandbox Python
/// workers get, starting the interpreter in it. An error when a required layer is missing
/// and `allow_weak_sandbox` is off, or when the interpreter cannot run in the sandbox.
pub fn status(config: &PythonConfig) -> Result<SandboxStatus, ScriptError> {
    Ok(sandbox_for(config)?.status.clone())
}

fn err(code: &'static str, message: impl Into<String>) -> ScriptError {
    ScriptError::plain(code, message)
}

// ------------------------------------------------------------------------------------
// The plan: which layers, and everything the child needs, prepared by the parent.
// ------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layers {
    /// Unshare a user namespace too (server not root).
    userns: bool,
    /// PID, network, IPC and UTS namespaces.
    namespaces: bool,
    /// Mount namespace and the private root.
    mount: bool,
    seccomp: bool,
    landlock_abi: u32,
}

/// What failed in the child, written to the report pipe as two `u32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
enum Step {
    Unshare = 1,
    IdMap,
    Fork,
    MountPrivate,
    MountTmpfs,
    PivotRoot,
    Bind,
    Remount,
    DropUid,
    Rlimit,
    NoNewPrivs,
    Landlock,
    Seccomp,
    Exec,
}

impl Step {
    fn from_u32(n: u32) -> Option<Step> {
        use Step::*;
        [
            Unshare,
            IdMap,
            Fork,
            MountPrivate,
            MountTmpfs,
            PivotRoot,
            Bind,
            Remount,
            DropUid,
            Rlimit,
            NoNewPrivs,
            Landlock,
            Seccomp,
            Exec,
        ]
        .into_iter()
        .find(|s| *s as u32 == n)
    }

    fn describe(self) -> &'static str {
        match self {
            Step::Unshare => "unshare(2) of the PID/mount/network/IPC namespaces",
            Step::IdMap => "writing the user namespace's uid/gid map",
            Step::Fork => "forking the worker",
            Step::MountPrivate => "making the mount tree private",
            Step::MountTmpfs => "mounting the worker's tmpfs root",
            Step::PivotRoot => "pivot_root(2) into the worker's root",
            Step::Bind => "bind-mounting the interpreter's files",
            Step::Remount => "remounting them read-only",
            Step::DropUid => "switching to run_as_uid",
            Step::Rlimit => "setting resource limits",
            Step::NoNewPrivs => "PR_SET_NO_NEW_PRIVS",
            Step::Landlock => "Landlock",
            Step::Seccomp => "installing the seccomp filter",
            Step::Exec => "executing the interpreter",
        }
    }
}

/// One operation building the worker's root, paths already prefixed (`/new`, `/old`).
enum Op {
    Dir(CString),
    Symlink {
        target: CString,
        at: CString,
    },
    Bind {
        src: CString,
        dst: CString,
        dir: bool,
        /// Flags of the read-only remount (the source's locked flags kept).
        remount: c_ulong,
    },
}

/// Everything the child does, prepared by the parent (the child must not allocate).
struct Prepared {
    layers: Layers,
    unshare_flags: c_int,
    uid_map: CString,
    gid_map: CString,
    drop_to: Option<u32>,
    bind_flags: c_ulong,
    /// The host directory the first tmpfs is mounted on, and `<it>/old`, `<it>/new`.
    base: CString,
    base_old: CString,
    base_new: CString,
    ops: Vec<Op>,
    /// Landlock rules: a path (in the final root) and the access it allows.
    landlock: Vec<(CString, u64)>,
    exec_path: CString,
    _argv: Vec<CString>,
    /// Pointers into `_argv`, null-terminated (as integers, to stay `Send`).
    argv_ptrs: Vec<usize>,
    filter: Vec<libc::sock_filter>,
}

/// Resource limits of one worker.
#[derive(Clone, Copy)]
pub(crate) struct Limits {
    pub address_space: u64,
    pub cpu_seconds: u64,
    /// Set `RLIMIT_NPROC` (a dedicated uid, so the count means something).
    pub nproc: bool,
}

/// A sandbox for one interpreter: the layers found and the prepared plan.
pub(crate) struct Sandbox {
    pub status: SandboxStatus,
    prepared: Arc<Prepared>,
}

/// Sandboxes found so far, by (interpreter, uid, weak allowed).
type Cache = Mutex<Vec<((String, u32, bool), Arc<Sandbox>)>>;
static CACHE: Cache = Mutex::new(Vec::new());

/// The sandbox for `config`, probed on first use.
pub(crate) fn sandbox_for(config: &PythonConfig) -> Result<Arc<Sandbox>, ScriptError> {
    let key = (
        config.interpreter.clone(),
        config.run_as_uid,
        config.allow_weak_sandbox,
    );
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, s)) = cache.iter().find(|(k, _)| *k == key) {
        return Ok(s.clone());
    }
    let sandbox = Arc::new(probe(config)?);
    cache.push((key, sandbox.clone()));
    Ok(sandbox)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The Landlock ABI version the kernel has, 0 without.
fn landlock_abi() -> u32 {
    // SAFETY: landlock_create_ruleset with a null attribute and the VERSION flag only
    // returns a number.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32, // LANDLOCK_CREATE_RULESET_VERSION
        )
    };
    u32::try_from(v).unwrap_or(0)
}

fn probe(config: &PythonConfig) -> Result<Sandbox, ScriptError> {
    if !config.interpreter.starts_with('/') {
        return Err(err(
            "worker_start",
            format!(
                "[scripts.python] interpreter must be an absolute path, not `{}`",
                config.interpreter
            ),
        ));
    }
    let found = discover(config)?;
    let root = is_root();
    let mut layers = Layers {
        userns: !root,
        namespaces: true,
        mount: true,
        seccomp: true,
        landlock_abi: landlock_abi(),
    };
    let mut missing = Vec::new();
    // Each failure of a kernel layer removes it (when weak is allowed) and tries again.
    for _ in 0..6 {
        let prepared = Arc::new(prepare(config, &found, layers)?);
        match try_start(config, &prepared) {
            Ok(()) => {
                let status = SandboxStatus {
                    pid_namespace: layers.namespaces,
                    mount_namespace: layers.mount,
                    network_namespace: layers.namespaces,
                    ipc_namespace: layers.namespaces,
                    user_namespace: layers.namespaces && layers.userns,
                    seccomp: layers.seccomp,
                    landlock_abi: layers.landlock_abi,
                    run_as_uid: root.then_some(config.run_as_uid),
                    rlimits: true,
                    weak: !missing.is_empty(),
                    missing,
                };
                if status.missing.is_empty() {
                    tracing::info!(
                        interpreter = %config.interpreter,
                        "Python worker sandbox: {}",
                        status.summary()
                    );
                } else {
                    tracing::warn!(
                        interpreter = %config.interpreter,
                        "Python worker sandbox is WEAK (allow_weak_sandbox = true): {}",
                        status.summary()
                    );
                }
                return Ok(Sandbox { status, prepared });
            }
            Err(Failure::Layer(step, errno)) => {
                let why = format!(
                    "{} failed: {}",
                    step.describe(),
                    std::io::Error::from_raw_os_error(errno)
                );
                let required = match step {
                    Step::Unshare | Step::IdMap => {
                        layers.namespaces = false;
                        layers.mount = false;
                        true
                    }
                    Step::MountPrivate
                    | Step::MountTmpfs
                    | Step::PivotRoot
                    | Step::Bind
                    | Step::Remount => {
                        layers.mount = false;
                        true
                    }
                    Step::NoNewPrivs | Step::Seccomp => {
                        layers.seccomp = false;
                        true
                    }
                    Step::Landlock => {
                        // Optional: the mount namespace is the filesystem boundary.
                        tracing::warn!("Python worker sandbox: {why}; going on without it");
                        layers.landlock_abi = 0;
                        false
                    }
                    Step::Fork | Step::DropUid | Step::Rlimit | Step::Exec => {
                        return Err(err(
                            "worker_start",
                            format!(
                                "cannot start the Python interpreter `{}` in its sandbox: \
                                 {why}",
                                config.interpreter
                            ),
                        ));
                    }
                };
                if required {
                    missing.push(why);
                    if !config.allow_weak_sandbox {
                        return Err(err(
                            "python_sandbox",
                            format!(
                                "Python scripts are refused: this host does not give the \
                                 worker sandbox they need ({}). Run the server as root or \
                                 enable unprivileged user namespaces and seccomp, or accept \
                                 weaker isolation with `[scripts.python] allow_weak_sandbox \
                                 = true` (see docs/scripts.md)",
                                missing.join("; ")
                            ),
                        ));
                    }
                }
            }
            Err(Failure::Other(message)) => {
                return Err(err(
                    "worker_start",
                    format!(
                        "the Python interpreter `{}` does not run in its sandbox: {message}",
                        config.interpreter
                    ),
                ));
            }
        }
    }
    Err(err(
        "python_sandbox",
        "the Python worker sandbox could not be set up",
    ))
}

enum Failure {
    Layer(Step, i32),
    Other(String),
}

/// Starts the driver in discovery mode inside the sandbox `prepared` describes.
fn try_start(config: &PythonConfig, prepared: &Arc<Prepared>) -> Result<(), Failure> {
    let limits = Limits {
        address_space: config.memory_mb.saturating_mul(1 << 20),
        cpu_seconds: config.cpu_seconds.min(30),
        nproc: prepared.drop_to.is_some(),
    };
    let (cmd, report) = command(prepared, limits).map_err(|e| Failure::Other(e.to_string()))?;
    let timeout = Duration::from_millis(config.start_timeout_ms.max(1_000));
    let out = run(cmd, b"{\"discover\": true}\n", timeout);
    let reported = report.read();
    let out = match (out, reported) {
        (_, Some((step, errno))) => return Err(Failure::Layer(step, errno)),
        (Err(e), None) => return Err(Failure::Other(e)),
        (Ok(out), None) => out,
    };
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    if answer.get("discover").is_some() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
        Err(Failure::Other(format!(
            "{}; it printed: {}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        )))
    }
}

/// What the interpreter loads, found by running the driver unsandboxed in discovery mode
/// (no user code: the driver only imports its modules and reports).
struct Found {
    executable: PathBuf,
    /// `sys.path` entries that exist.
    path: Vec<PathBuf>,
    /// Files mapped into the process (shared libraries, the executable).
    maps: Vec<PathBuf>,
}

fn discover(config: &PythonConfig) -> Result<Found, ScriptError> {
    let mut cmd = Command::new(&config.interpreter);
    cmd.args(PY_FLAGS).arg(DRIVER).env_clear().current_dir("/");
    let timeout = Duration::from_millis(config.start_timeout_ms.max(1_000));
    let start_err = |e: String| {
        err(
            "worker_start",
            format!(
                "cannot start the Python interpreter `{}`: {e}; set [scripts.python] \
                 interpreter to a Python 3",
                config.interpreter
            ),
        )
    };
    let out = run(cmd, b"{\"discover\": true}\n", timeout).map_err(start_err)?;
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|_| start_err(String::from_utf8_lossy(&out.stderr).into_owned()))?;
    let d = &answer["discover"];
    let paths = |k: &str| -> Vec<PathBuf> {
        d[k].as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str())
            .map(PathBuf::from)
            .filter(|p| p.is_absolute() && p.exists())
            .collect()
    };
    let executable = d["executable"]
        .as_str()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(&config.interpreter));
    Ok(Found {
        executable: std::fs::canonicalize(&executable).unwrap_or(executable),
        path: paths("path"),
        maps: paths("maps"),
    })
}

/// The output of a short run.
struct Output {
    status: std::process::ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Runs `cmd` with `input` on stdin and collects its output, killing it after `timeout`.
fn run(mut cmd: Command, input: &[u8], timeout: Duration) -> Result<Output, String> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input);
    }
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = (&mut stdout).take(1 << 20).read_to_end(&mut b);
        b
    });
    let errs = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = (&mut stderr).take(1 << 20).read_to_end(&mut b);
        b
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "it did not answer within {} ms",
                    timeout.as_millis()
                ));
            }
        }
    };
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: errs.join().unwrap_or_default(),
    })
}

// ------------------------------------------------------------------------------------
// Building the plan.
// ------------------------------------------------------------------------------------

fn cstring(s: impl AsRef<[u8]>) -> Result<CString, ScriptError> {
    CString::new(s.as_ref()).map_err(|_| err("worker_start", "a path contains a NUL byte"))
}

fn prefixed(prefix: &str, path: &Path) -> Result<CString, ScriptError> {
    let mut v = prefix.as_bytes().to_vec();
    v.extend_from_slice(path.as_os_str().as_bytes());
    cstring(v)
}

/// Lexically normalized absolute path (`..` pops; the caller resolved symlinks before it).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// The worker's root: which host paths appear in it, and how.
#[derive(Default)]
struct Tree {
    /// Paths that exist in the new root (created or bound).
    have: HashSet<PathBuf>,
    /// Bound paths: (path, is a directory).
    binds: Vec<(PathBuf, bool)>,
    /// Operations in order, with unprefixed paths.
    ops: Vec<TreeOp>,
}

enum TreeOp {
    Dir(PathBuf),
    Symlink(PathBuf, PathBuf),
    Bind(PathBuf, bool),
}

impl Tree {
    fn inside_bind(&self, p: &Path) -> bool {
        self.binds.iter().any(|(b, dir)| *dir && p.starts_with(b))
    }

    /// Makes `path` resolve in the new root as on the host: every symlink on the way is
    /// recreated (and followed), the final file or directory is bound read-only. With
    /// `link_only`, a final symlink is recreated but its target not exposed.
    fn expose(&mut self, path: &Path, link_only: bool, depth: u32) {
        if depth > 32 {
            return;
        }
        let path = normalize(path);
        let comps: Vec<_> = path.components().skip(1).collect();
        let mut cur = PathBuf::from("/");
        for (i, c) in comps.iter().enumerate() {
            let next = cur.join(c);
            let last = i + 1 == comps.len();
            let Ok(meta) = std::fs::symlink_metadata(&next) else {
                return;
            };
            if meta.file_type().is_symlink() {
                let Ok(target) = std::fs::read_link(&next) else {
                    return;
                };
                if !self.inside_bind(&next) && self.have.insert(next.clone()) {
                    self.ops.push(TreeOp::Symlink(target.clone(), next.clone()));
                }
                if last && link_only {
                    return;
                }
                let mut resolved = cur.join(&target);
                for rest in &comps[i + 1..] {
                    resolved.push(rest);
                }
                return self.expose(&resolved, false, depth + 1);
            }
            if self.inside_bind(&next) {
                cur = next;
                continue;
            }
            if last {
                if self.have.insert(next.clone()) {
                    self.binds.push((next.clone(), meta.is_dir()));
                    self.ops.push(TreeOp::Bind(next.clone(), meta.is_dir()));
                }
            } else if meta.is_dir() {
                if self.have.insert(next.clone()) {
                    self.ops.push(TreeOp::Dir(next.clone()));
                }
            } else {
                return;
            }
            cur = next;
        }
    }
}

/// The program interpreter (`PT_INTERP`) of a 64-bit little-endian ELF file.
fn elf_interp(path: &Path) -> Option<PathBuf> {
    let mut data = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(1 << 16)
        .read_to_end(&mut data)
        .ok()?;
    if data.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(data.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(data.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(data.get(o..o + 8)?.try_into().ok()?));
    let phoff = usize::try_from(u64_at(0x20)?).ok()?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if u32_at(ph)? == 3 {
            let off = usize::try_from(u64_at(ph + 8)?).ok()?;
            let len = usize::try_from(u64_at(ph + 32)?).ok()?;
            let raw = data.get(off..off + len)?;
            let raw = raw.split(|b| *b == 0).next()?;
            return Some(PathBuf::from(std::ffi::OsStr::from_bytes(raw)));
        }
    }
    None
}

/// Flags a read-only remount of a bind of `src` must keep (a user namespace may not
/// clear the locked ones).
fn remount_flags(src: &Path) -> c_ulong {
    let mut flags = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID;
    flags |= libc::MS_NODEV;
    let Ok(c) = CString::new(src.as_os_str().as_bytes()) else {
        return flags;
    };
    // SAFETY: statvfs writes into the struct we pass.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid path and a valid out-pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0 {
        let f = st.f_flag;
        for (st_flag, ms_flag) in [
            (libc::ST_NOEXEC, libc::MS_NOEXEC),
            (libc::ST_NOATIME, libc::MS_NOATIME),
            (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
            (libc::ST_RELATIME, libc::MS_RELATIME),
        ] {
            if f & st_flag != 0 {
                flags |= ms_flag;
            }
        }
    }
    flags
}

/// A host directory to mount the first tmpfs on (hidden only inside the worker).
fn base_dir() -> PathBuf {
    ["/tmp", "/mnt", "/run", "/var/tmp", "/media", "/srv", "/opt"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_dir())
        .unwrap_or_else(|| PathBuf::from("/proc"))
}

fn prepare(config: &PythonConfig, found: &Found, layers: Layers) -> Result<Prepared, ScriptError> {
    let mut tree = Tree::default();
    // Top-level symlinks (`/lib -> usr/lib` on merged-/usr systems) so that the loader's
    // cached paths resolve; they expose nothing by themselves.
    if let Ok(entries) = std::fs::read_dir("/") {
        let mut links: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.symlink_metadata().is_ok_and(|m| m.is_symlink()))
            .collect();
        links.sort();
        for l in links {
            tree.expose(&l, true, 0);
        }
    }
    // Directories first, shortest first, so that nested ones are covered by their parent.
    let exe = &found.executable;
    let mut dirs: Vec<PathBuf> = found
        .path
        .iter()
        .filter(|p| p.is_dir())
        .cloned()
        .chain(
            found
                .maps
                .iter()
                .filter(|m| *m != exe)
                .filter_map(|m| m.parent().map(Path::to_path_buf)),
        )
        .collect();
    dirs.sort_by_key(|d| (d.as_os_str().len(), d.clone()));
    dirs.dedup();
    for d in &dirs {
        tree.expose(d, false, 0);
    }
    let interpreter = PathBuf::from(&config.interpreter);
    tree.expose(&interpreter, false, 0);
    if let Some(interp) = elf_interp(exe) {
        tree.expose(&interp, false, 0);
    }
    tree.expose(Path::new("/etc/ld.so.cache"), false, 0);
    // A virtual environment's marker, next to or above its bin/ directory.
    for up in [
        interpreter.parent(),
        interpreter.parent().and_then(Path::parent),
    ]
    .into_iter()
    .flatten()
    {
        let cfg = up.join("pyvenv.cfg");
        if cfg.is_file() {
            tree.expose(&cfg, false, 0);
        }
    }

    let base = base_dir();
    let mut ops = Vec::with_capacity(tree.ops.len());
    for op in &tree.ops {
        ops.push(match op {
            TreeOp::Dir(p) => Op::Dir(prefixed("/new", p)?),
            TreeOp::Symlink(target, at) => Op::Symlink {
                target: cstring(target.as_os_str().as_bytes())?,
                at: prefixed("/new", at)?,
            },
            TreeOp::Bind(p, dir) => Op::Bind {
                src: prefixed("/old", p)?,
                dst: prefixed("/new", p)?,
                dir: *dir,
                remount: remount_flags(p),
            },
        });
    }
    let landlock = tree
        .binds
        .iter()
        .map(|(p, dir)| {
            let access = if *dir {
                LL_READ_FILE | LL_READ_DIR | LL_EXECUTE
            } else {
                LL_READ_FILE | LL_EXECUTE
            };
            Ok((cstring(p.as_os_str().as_bytes())?, access))
        })
        .collect::<Result<Vec<_>, ScriptError>>()?;

    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let mut unshare_flags = 0;
    if layers.namespaces {
        unshare_flags |= libc::CLONE_NEWPID | libc::CLONE_NEWNET | libc::CLONE_NEWIPC;
        unshare_flags |= libc::CLONE_NEWUTS;
        if layers.userns {
            unshare_flags |= libc::CLONE_NEWUSER;
        }
        if layers.mount {
            unshare_flags |= libc::CLONE_NEWNS;
        }
    }
    let drop_to = is_root().then_some(config.run_as_uid);
    let exec_path = cstring(&config.interpreter)?;
    let argv: Vec<CString> = std::iter::once(config.interpreter.as_str())
        .chain(PY_FLAGS)
        .chain(std::iter::once(DRIVER))
        .map(cstring)
        .collect::<Result<_, _>>()?;
    let argv_ptrs: Vec<usize> = argv
        .iter()
        .map(|a| a.as_ptr() as usize)
        .chain(std::iter::once(0))
        .collect();
    // The filter allows exactly this execve: the pointer to the path (the same address in
    // the forked child) is part of it.
    let filter = seccomp_filter(exec_path.as_ptr() as u64, layers.namespaces);
    Ok(Prepared {
        layers,
        unshare_flags,
        uid_map: cstring(format!("{uid} {uid} 1\n"))?,
        gid_map: cstring(format!("{gid} {gid} 1\n"))?,
        drop_to,
        // In a user namespace a non-recursive bind of a tree with locked submounts fails.
        bind_flags: if layers.userns {
            libc::MS_BIND | libc::MS_REC
        } else {
            libc::MS_BIND
        },
        base_old: prefixed("", &base.join("old"))?,
        base_new: prefixed("", &base.join("new"))?,
        base: prefixed("", &base)?,
        ops,
        landlock,
        exec_path,
        _argv: argv,
        argv_ptrs,
        filter,
    })
}

// ------------------------------------------------------------------------------------
// Seccomp.
// ------------------------------------------------------------------------------------

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

const RET_ALLOW: u32 = 0x7fff_0000;
const RET_KILL: u32 = 0x8000_0000;
const RET_EPERM: u32 = 0x0005_0000 | libc::EPERM as u32;
const RET_ENOSYS: u32 = 0x0005_0000 | libc::ENOSYS as u32;

/// System calls a worker never makes, refused with EPERM.
fn denied_syscalls() -> Vec<libc::c_long> {
    use libc::*;
    #[allow(unused_mut)]
    let mut v = vec![
        // Sockets of any family.
        SYS_socket,
        SYS_socketpair,
        SYS_connect,
        SYS_bind,
        SYS_listen,
        SYS_accept,
        SYS_accept4,
        SYS_getsockopt,
        SYS_setsockopt,
        SYS_getsockname,
        SYS_getpeername,
        SYS_sendto,
        SYS_recvfrom,
        SYS_sendmsg,
        SYS_recvmsg,
        SYS_sendmmsg,
        SYS_recvmmsg,
        SYS_shutdown,
        // Other programs and other processes.
        SYS_execveat,
        SYS_ptrace,
        SYS_process_vm_readv,
        SYS_process_vm_writev,
        SYS_process_madvise,
        SYS_pidfd_open,
        SYS_pidfd_getfd,
        SYS_pidfd_send_signal,
        SYS_rt_sigqueueinfo,
        SYS_rt_tgsigqueueinfo,
        SYS_tkill,
        SYS_kcmp,
        SYS_get_robust_list,
        SYS_move_pages,
        SYS_migrate_pages,
        // Mounts, namespaces, identities.
        SYS_mount,
        SYS_umount2,
        SYS_pivot_root,
        SYS_chroot,
        SYS_unshare,
        SYS_setns,
        SYS_move_mount,
        SYS_open_tree,
        SYS_fsopen,
        SYS_fsconfig,
        SYS_fsmount,
        SYS_fspick,
        SYS_mount_setattr,
        SYS_open_by_handle_at,
        SYS_name_to_handle_at,
        SYS_mknodat,
        SYS_setuid,
        SYS_setgid,
        SYS_setreuid,
        SYS_setregid,
        SYS_setresuid,
        SYS_setresgid,
        SYS_setgroups,
        SYS_setfsuid,
        SYS_setfsgid,
        SYS_capset,
        SYS_personality,
        // Kernel attack surface a script has no use for.
        SYS_bpf,
        SYS_perf_event_open,
        SYS_userfaultfd,
        SYS_io_uring_setup,
        SYS_io_uring_enter,
        SYS_io_uring_register,
        SYS_keyctl,
        SYS_add_key,
        SYS_request_key,
        SYS_init_module,
        SYS_finit_module,
        SYS_delete_module,
        SYS_kexec_load,
        SYS_kexec_file_load,
        SYS_reboot,
        SYS_swapon,
        SYS_swapoff,
        SYS_acct,
        SYS_quotactl,
        SYS_quotactl_fd,
        SYS_syslog,
        SYS_sethostname,
        SYS_setdomainname,
        SYS_settimeofday,
        SYS_clock_settime,
        SYS_adjtimex,
        SYS_clock_adjtime,
        SYS_fanotify_init,
        SYS_lookup_dcookie,
        SYS_vhangup,
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([
        SYS_fork,
        SYS_vfork,
        SYS_mknod,
        SYS_uselib,
        SYS_iopl,
        SYS_ioperm,
        SYS_modify_ldt,
    ]);
    v
}

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

const LD_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const JSET: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
/// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARG0_LO: u32 = 16;
const OFF_ARG0_HI: u32 = 20;

/// The worker's filter. `exec_ptr`: the address of the interpreter path the worker passes
/// to its one allowed `execve`.
/// `pid_ns`: the worker is PID 1 of its own PID namespace, so `kill(1, …)` is itself;
/// without one (weak mode) it may signal nothing.
fn seccomp_filter(exec_ptr: u64, pid_ns: bool) -> Vec<libc::sock_filter> {
    let nr = |n: libc::c_long| n as u32;
    let mut f = vec![
        // Another ABI (i386 via int 0x80, x32) would bypass the numbers below: kill.
        stmt(LD_ABS, OFF_ARCH),
        jump(JEQ, AUDIT_ARCH, 1, 0),
        stmt(RET, RET_KILL),
        stmt(LD_ABS, OFF_NR),
    ];
    #[cfg(target_arch = "x86_64")]
    f.extend([jump(JGE, 0x4000_0000, 0, 1), stmt(RET, RET_KILL)]);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = JGE;
    for n in denied_syscalls() {
        f.extend([jump(JEQ, nr(n), 0, 1), stmt(RET, RET_EPERM)]);
    }
    // clone3 takes its flags in memory the filter cannot read: ENOSYS makes the C library
    // fall back to clone, whose flags it can.
    f.extend([jump(JEQ, nr(libc::SYS_clone3), 0, 1), stmt(RET, RET_ENOSYS)]);
    // clone: threads only (CLONE_THREAD); fork and vfork are clone without it.
    f.extend([
        jump(JEQ, nr(libc::SYS_clone), 0, 4),
        stmt(LD_ABS, OFF_ARG0_LO),
        jump(JSET, libc::CLONE_THREAD as u32, 0, 1),
        stmt(RET, RET_ALLOW),
        stmt(RET, RET_EPERM),
    ]);
    // Signals to itself only (PID 1 of its namespace).
    let own_pid = if pid_ns { 1 } else { 0 };
    for call in [libc::SYS_kill, libc::SYS_tgkill] {
        f.extend([
            jump(JEQ, nr(call), 0, 4),
            stmt(LD_ABS, OFF_ARG0_LO),
            // pid 0 is the caller's process group: never allowed, so 0 means "none".
            jump(JEQ, own_pid, 0, 1),
            stmt(RET, if pid_ns { RET_ALLOW } else { RET_EPERM }),
            stmt(RET, RET_EPERM),
        ]);
    }
    // execve: only the interpreter path at this exact address, which is the worker's own
    // start; after it the address means nothing the script can know.
    f.extend([
        jump(JEQ, nr(libc::SYS_execve), 0, 6),
        stmt(LD_ABS, OFF_ARG0_LO),
        jump(JEQ, exec_ptr as u32, 0, 3),
        stmt(LD_ABS, OFF_ARG0_HI),
        jump(JEQ, (exec_ptr >> 32) as u32, 0, 1),
        stmt(RET, RET_ALLOW),
        stmt(RET, RET_EPERM),
    ]);
    f.push(stmt(RET, RET_ALLOW));
    f
}

// ------------------------------------------------------------------------------------
// Landlock.
// ------------------------------------------------------------------------------------

const LL_EXECUTE: u64 = 1 << 0;
const LL_READ_FILE: u64 = 1 << 2;
const LL_READ_DIR: u64 = 1 << 3;

/// File system rights the kernel of `abi` knows (all handled, so all denied but the rules).
fn landlock_fs_rights(abi: u32) -> u64 {
    let mut r = (1 << 13) - 1; // ABI 1: EXECUTE .. MAKE_SYM
    if abi >= 2 {
        r |= 1 << 13; // REFER
    }
    if abi >= 3 {
        r |= 1 << 14; // TRUNCATE
    }
    if abi >= 5 {
        r |= 1 << 15; // IOCTL_DEV
    }
    r
}

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

// ------------------------------------------------------------------------------------
// The child side: system calls only.
// ------------------------------------------------------------------------------------

/// The read end of the pipe the child reports a failed step on.
pub(crate) struct Report(c_int);

impl Report {
    /// The failed step and errno, if the child wrote one.
    fn read(&self) -> Option<(Step, i32)> {
        let mut buf = [0u8; 8];
        // SAFETY: reading into a local buffer from a descriptor we own (non-blocking).
        let n = unsafe { libc::read(self.0, buf.as_mut_ptr().cast(), 8) };
        if n != 8 {
            return None;
        }
        let step = u32::from_ne_bytes(buf[..4].try_into().ok()?);
        let errno = u32::from_ne_bytes(buf[4..].try_into().ok()?);
        Some((Step::from_u32(step)?, errno as i32))
    }

    /// A message for a failed start, when the child said which step failed.
    pub(crate) fn describe(&self) -> Option<String> {
        self.read().map(|(step, errno)| {
            format!(
                "{} failed: {}",
                step.describe(),
                std::io::Error::from_raw_os_error(errno)
            )
        })
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        // SAFETY: closing a descriptor we own.
        unsafe {
            libc::close(self.0);
        }
    }
}

/// A `Command` that starts the interpreter inside the sandbox `prepared` describes, with
/// an empty environment; the caller sets up stdio.
fn command(prepared: &Arc<Prepared>, limits: Limits) -> std::io::Result<(Command, Report)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let (read, write) = (Report(fds[0]), Report(fds[1]));
    let mut cmd = Command::new(prepared.exec_path.to_str().unwrap_or("python3"));
    cmd.env_clear().current_dir("/");
    let p = prepared.clone();
    let report = write.0;
    // The parent's copy of the write end closes when the command is dropped.
    let keep = Arc::new(write);
    // SAFETY: the closure runs between fork and exec and makes system calls only on data
    // prepared before the fork (see `supervisor` and `worker`).
    unsafe {
        cmd.pre_exec(move || {
            let _ = &keep;
            supervisor(&p, limits, report)
        });
    }
    Ok((cmd, read))
}

/// `command` for a worker of `config`.
pub(crate) fn worker_command(
    sandbox: &Sandbox,
    limits: Limits,
) -> std::io::Result<(Command, Report)> {
    command(&sandbox.prepared, limits)
}

/// Records the failed step for the parent and returns the error.
fn fail(report: c_int, step: Step) -> std::io::Error {
    let e = std::io::Error::last_os_error();
    let errno = e.raw_os_error().unwrap_or(libc::EINVAL) as u32;
    let mut buf = [0u8; 8];
    buf[..4].copy_from_slice(&(step as u32).to_ne_bytes());
    buf[4..].copy_from_slice(&errno.to_ne_bytes());
    // SAFETY: write(2) from a local buffer.
    unsafe {
        libc::write(report, buf.as_ptr().cast(), 8);
    }
    e
}

fn check(rc: libc::c_long, report: c_int, step: Step) -> std::io::Result<()> {
    if rc < 0 {
        Err(fail(report, step))
    } else {
        Ok(())
    }
}

/// Writes `data` to a /proc file (the user namespace's maps).
fn write_proc(path: &std::ffi::CStr, data: &[u8]) -> bool {
    // SAFETY: open/write/close on a valid C string and a local buffer.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return false;
        }
        let ok = libc::write(fd, data.as_ptr().cast(), data.len()) == data.len() as isize;
        libc::close(fd);
        ok
    }
}

/// Closes every descriptor but `keep` (sorted, all above 2 but stdout).
fn close_all_but(keep: &[c_int]) {
    let mut from: u32 = 0;
    for &k in keep {
        let k = k as u32;
        if k > from {
            close_range(from, k - 1, 0);
        }
        from = k + 1;
    }
    close_range(from, u32::MAX, 0);
}

fn close_range(first: u32, last: u32, flags: u32) {
    // SAFETY: close_range(2) only affects this process's descriptor table.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) };
    if rc != 0 {
        for fd in first..=last.min(4095) {
            // SAFETY: as above, one descriptor at a time.
            unsafe {
                if flags == 0 {
                    libc::close(fd as c_int);
                } else {
                    libc::fcntl(fd as c_int, libc::F_SETFD, libc::FD_CLOEXEC);
                }
            }
        }
    }
}

/// The forked child: namespaces, then fork the worker and supervise it. Returns only on
/// failure (the worker returns from its own copy of this function only on failure too).
fn supervisor(p: &Prepared, limits: Limits, report: c_int) -> std::io::Result<()> {
    // SAFETY: system calls on this (single-threaded, forked) process with data prepared
    // before the fork.
    unsafe {
        // A session of its own, so a kill of the group reaches it.
        libc::setsid();
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        if p.layers.namespaces {
            check(
                libc::unshare(p.unshare_flags) as libc::c_long,
                report,
                Step::Unshare,
            )?;
            if p.layers.userns
                && !(write_proc(c"/proc/self/setgroups", b"deny")
                    && write_proc(c"/proc/self/uid_map", p.uid_map.as_bytes())
                    && write_proc(c"/proc/self/gid_map", p.gid_map.as_bytes()))
            {
                return Err(fail(report, Step::IdMap));
            }
        }
        let mut link = [0; 2];
        check(
            libc::pipe2(link.as_mut_ptr(), libc::O_CLOEXEC) as libc::c_long,
            report,
            Step::Fork,
        )?;
        // A raw fork: no atfork handlers run in this copy of a threaded process.
        let pid = libc::syscall(
            libc::SYS_clone,
            libc::SIGCHLD as c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        );
        if pid < 0 {
            return Err(fail(report, Step::Fork));
        }
        if pid > 0 {
            supervise(pid as libc::pid_t, link[1]);
        }
        // The worker.
        libc::close(link[1]);
        libc::setsid();
        worker(p, limits, report, link[0])
    }
}

/// The supervisor's life after the fork: wait for the worker and end as it ended; kill it
/// when the server stops reading its stdout.
fn supervise(child: libc::pid_t, link: c_int) -> ! {
    close_all_but(&[1, link]);
    // SAFETY: system calls on this process and its child only.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, child, 0) as c_int;
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: 1,
                    events: 0,
                    revents: 0,
                },
                libc::pollfd {
                    fd: pidfd,
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            if pidfd >= 0 {
                libc::poll(fds.as_mut_ptr(), 2, -1);
            } else {
                libc::poll(fds.as_mut_ptr(), 1, 20);
            }
            let server_gone = fds[0].revents & (libc::POLLERR | libc::POLLHUP) != 0;
            if server_gone {
                libc::kill(child, libc::SIGKILL);
            }
            let mut status = 0;
            let flags = if server_gone { 0 } else { libc::WNOHANG };
            let r = libc::waitpid(child, &mut status, flags);
            if r == child {
                if libc::WIFSIGNALED(status) {
                    let sig = libc::WTERMSIG(status);
                    libc::signal(sig, libc::SIG_DFL);
                    let mut none: libc::sigset_t = std::mem::zeroed();
                    libc::sigemptyset(&mut none);
                    libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
                    libc::kill(libc::getpid(), sig);
                }
                let code = if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else {
                    1
                };
                libc::_exit(code);
            }
            if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                libc::_exit(1);
            }
        }
    }
}

/// The worker, PID 1 of its namespace: root, identity, limits, Landlock, seccomp, exec.
/// `link`: the read end of a pipe only the supervisor writes to (closed when it dies).
fn worker(p: &Prepared, limits: Limits, report: c_int, link: c_int) -> std::io::Result<()> {
    // SAFETY: system calls with C strings and structs prepared before the fork.
    unsafe {
        if p.layers.mount {
            build_root(p, report)?;
        }
        if let Some(uid) = p.drop_to {
            check(
                libc::setgroups(0, std::ptr::null()) as libc::c_long,
                report,
                Step::DropUid,
            )?;
            check(libc::setgid(uid) as libc::c_long, report, Step::DropUid)?;
            check(libc::setuid(uid) as libc::c_long, report, Step::DropUid)?;
        }
        // It dies with the supervisor. Set after the uid change, which clears it; if the
        // supervisor is already gone (its end of `link` closed), stop here.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as c_ulong, 0, 0, 0);
        let mut pfd = libc::pollfd {
            fd: link,
            events: libc::POLLIN,
            revents: 0,
        };
        if libc::poll(&mut pfd, 1, 0) > 0 && pfd.revents & libc::POLLHUP != 0 {
            libc::_exit(1);
        }
        libc::close(link);
        set_limits(limits, report)?;
        check(
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as c_ulong, 0, 0, 0) as libc::c_long,
            report,
            Step::NoNewPrivs,
        )?;
        if p.layers.landlock_abi > 0 {
            landlock(p, report)?;
        }
        // Whatever the server had open (without close-on-exec) is not the worker's.
        close_range(3, u32::MAX, libc::CLOSE_RANGE_CLOEXEC);
        if p.layers.seccomp {
            let prog = libc::sock_fprog {
                len: p.filter.len() as u16,
                filter: p.filter.as_ptr() as *mut libc::sock_filter,
            };
            check(
                libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER as c_ulong,
                    &prog as *const libc::sock_fprog as c_ulong,
                    0,
                    0,
                ) as libc::c_long,
                report,
                Step::Seccomp,
            )?;
        }
        let envp: [*const c_char; 1] = [std::ptr::null()];
        libc::execve(
            p.exec_path.as_ptr(),
            p.argv_ptrs.as_ptr() as *const *const c_char,
            envp.as_ptr(),
        );
        Err(fail(report, Step::Exec))
    }
}

/// The worker's root: tmpfs, read-only binds, `pivot_root`, the host tree detached.
///
/// # Safety
/// Only between fork and exec, in the worker's own mount namespace.
unsafe fn build_root(p: &Prepared, report: c_int) -> std::io::Result<()> {
    let null = std::ptr::null::<c_char>();
    let tmpfs = c"tmpfs";
    let opts = c"mode=0755,size=1m";
    let tmpfs_flags = libc::MS_NOSUID | libc::MS_NODEV;
    // SAFETY: system calls with valid C strings, in the worker's mount namespace.
    unsafe {
        check(
            libc::mount(
                null,
                c"/".as_ptr(),
                null,
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) as libc::c_long,
            report,
            Step::MountPrivate,
        )?;
        check(
            libc::mount(
                tmpfs.as_ptr(),
                p.base.as_ptr(),
                tmpfs.as_ptr(),
                tmpfs_flags,
                opts.as_ptr().cast(),
            ) as libc::c_long,
            report,
            Step::MountTmpfs,
        )?;
        check(
            libc::mkdir(p.base_old.as_ptr(), 0o755) as libc::c_long,
            report,
            Step::MountTmpfs,
        )?;
        check(
            libc::mkdir(p.base_new.as_ptr(), 0o755) as libc::c_long,
            report,
            Step::MountTmpfs,
        )?;
        // The base tmpfs becomes the root and the host's root sits at /old.
        check(
            libc::syscall(libc::SYS_pivot_root, p.base.as_ptr(), p.base_old.as_ptr()),
            report,
            Step::PivotRoot,
        )?;
        check(
            libc::chdir(c"/".as_ptr()) as libc::c_long,
            report,
            Step::PivotRoot,
        )?;
        check(
            libc::mount(
                tmpfs.as_ptr(),
                c"/new".as_ptr(),
                tmpfs.as_ptr(),
                tmpfs_flags,
                opts.as_ptr().cast(),
            ) as libc::c_long,
            report,
            Step::MountTmpfs,
        )?;
        for op in &p.ops {
            match op {
                Op::Dir(d) => {
                    check(
                        libc::mkdir(d.as_ptr(), 0o755) as libc::c_long,
                        report,
                        Step::Bind,
                    )?;
                }
                Op::Symlink { target, at } => {
                    check(
                        libc::symlink(target.as_ptr(), at.as_ptr()) as libc::c_long,
                        report,
                        Step::Bind,
                    )?;
                }
                Op::Bind {
                    src,
                    dst,
                    dir,
                    remount,
                } => {
                    if *dir {
                        check(
                            libc::mkdir(dst.as_ptr(), 0o755) as libc::c_long,
                            report,
                            Step::Bind,
                        )?;
                    } else {
                        let fd = libc::open(
                            dst.as_ptr(),
                            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC,
                            0o644,
                        );
                        check(fd as libc::c_long, report, Step::Bind)?;
                        libc::close(fd);
                    }
                    check(
                        libc::mount(
                            src.as_ptr(),
                            dst.as_ptr(),
                            null,
                            p.bind_flags,
                            std::ptr::null(),
                        ) as libc::c_long,
                        report,
                        Step::Bind,
                    )?;
                    check(
                        libc::mount(null, dst.as_ptr(), null, *remount, std::ptr::null())
                            as libc::c_long,
                        report,
                        Step::Remount,
                    )?;
                }
            }
        }
        check(
            libc::mount(
                null,
                c"/new".as_ptr(),
                null,
                libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | tmpfs_flags,
                std::ptr::null(),
            ) as libc::c_long,
            report,
            Step::Remount,
        )?;
        // /new becomes the root; the old one (the base tmpfs with the host's tree under it)
        // is stacked on it and detached, with everything below it.
        let old = libc::open(
            c"/".as_ptr(),
            libc::O_DIRECTORY | libc::O_RDONLY | libc::O_CLOEXEC,
        );
        check(old as libc::c_long, report, Step::PivotRoot)?;
        check(
            libc::chdir(c"/new".as_ptr()) as libc::c_long,
            report,
            Step::PivotRoot,
        )?;
        check(
            libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()),
            report,
            Step::PivotRoot,
        )?;
        check(libc::fchdir(old) as libc::c_long, report, Step::PivotRoot)?;
        check(
            libc::umount2(c".".as_ptr(), libc::MNT_DETACH) as libc::c_long,
            report,
            Step::PivotRoot,
        )?;
        libc::close(old);
        check(
            libc::chdir(c"/".as_ptr()) as libc::c_long,
            report,
            Step::PivotRoot,
        )?;
    }
    Ok(())
}

/// # Safety
/// Only between fork and exec.
unsafe fn set_limits(limits: Limits, report: c_int) -> std::io::Result<()> {
    #[cfg(target_env = "gnu")]
    type Resource = libc::__rlimit_resource_t;
    #[cfg(not(target_env = "gnu"))]
    type Resource = c_int;
    let set = |resource: Resource, value: u64| {
        let rl = libc::rlimit {
            rlim_cur: value,
            rlim_max: value,
        };
        // SAFETY: setrlimit reads the struct we pass.
        check(
            unsafe { libc::setrlimit(resource, &rl) } as libc::c_long,
            report,
            Step::Rlimit,
        )
    };
    set(libc::RLIMIT_AS, limits.address_space)?;
    set(libc::RLIMIT_CPU, limits.cpu_seconds)?;
    set(libc::RLIMIT_FSIZE, 0)?;
    set(libc::RLIMIT_CORE, 0)?;
    set(libc::RLIMIT_NOFILE, 64)?;
    if limits.nproc {
        // A dedicated uid: its processes (threads) can be counted.
        set(libc::RLIMIT_NPROC, 4096)?;
    }
    Ok(())
}

/// # Safety
/// Only between fork and exec.
unsafe fn landlock(p: &Prepared, report: c_int) -> std::io::Result<()> {
    let abi = p.layers.landlock_abi;
    let attr = RulesetAttr {
        handled_access_fs: landlock_fs_rights(abi),
        // ABI 4: TCP bind and connect, none allowed.
        handled_access_net: if abi >= 4 { 0b11 } else { 0 },
        // ABI 6: no abstract unix sockets or signals outside the worker's domain.
        scoped: if abi >= 6 { 0b11 } else { 0 },
    };
    let size: usize = match abi {
        1..=3 => 8,
        4 | 5 => 16,
        _ => 24,
    };
    // SAFETY: the Landlock system calls with structs that live through the calls.
    unsafe {
        let ruleset = libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            size,
            0u32,
        );
        check(ruleset, report, Step::Landlock)?;
        let ruleset = ruleset as c_int;
        for (path, access) in &p.landlock {
            let fd = libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
            if fd < 0 {
                continue; // not in this root (weak mode without a mount namespace)
            }
            let rule = PathBeneathAttr {
                allowed_access: *access,
                parent_fd: fd,
            };
            let rc = libc::syscall(
                libc::SYS_landlock_add_rule,
                ruleset,
                1u32, // LANDLOCK_RULE_PATH_BENEATH
                &rule as *const PathBeneathAttr,
                0u32,
            );
            libc::close(fd);
            check(rc, report, Step::Landlock)?;
        }
        let rc = libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0u32);
        libc::close(ruleset);
        check(rc, report, Step::Landlock)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalize_lexically() {
        assert_eq!(
            normalize(Path::new("/usr/lib/../bin/./x")),
            Path::new("/usr/bin/x")
        );
        assert_eq!(normalize(Path::new("/../a")), Path::new("/a"));
    }

    #[test]
    fn the_elf_interpreter_of_this_test_binary_is_found() {
        let exe = std::env::current_exe().unwrap();
        // Dynamically linked on glibc: an absolute PT_INTERP.
        if let Some(i) = elf_interp(&exe) {
            assert!(i.is_absolute(), "{i:?}");
        }
    }

    #[test]
    fn the_filter_checks_the_architecture_first_and_allows_by_default() {
        let f = seccomp_filter(0x1234_5678_9abc, true);
        assert_eq!(f[0].k, OFF_ARCH);
        assert_eq!(f[1].k, AUDIT_ARCH);
        assert_eq!(f[2].k, RET_KILL);
        assert_eq!(f.last().unwrap().k, RET_ALLOW);
        assert!(f.len() < 4096, "BPF programs are at most 4096 instructions");
    }

    /// Runs the classic-BPF subset the filter uses on one `seccomp_data`.
    fn eval(f: &[libc::sock_filter], arch: u32, nr: libc::c_long, arg0: u64) -> u32 {
        let word = |off: u32| match off {
            OFF_NR => nr as u32,
            OFF_ARCH => arch,
            OFF_ARG0_LO => arg0 as u32,
            OFF_ARG0_HI => (arg0 >> 32) as u32,
            other => panic!("load at {other}"),
        };
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = f[pc];
            match i.code {
                LD_ABS => acc = word(i.k),
                RET => return i.k,
                JEQ | JGE | JSET => {
                    let taken = match i.code {
                        JEQ => acc == i.k,
                        JGE => acc >= i.k,
                        _ => acc & i.k != 0,
                    };
                    pc += usize::from(if taken { i.jt } else { i.jf });
                }
                other => panic!("opcode {other:#x}"),
            }
            pc += 1;
        }
    }

    #[test]
    fn the_filter_refuses_what_it_must_and_lets_python_work() {
        let exec = 0x7f00_1234_5678u64;
        let f = seccomp_filter(exec, true);
        let run = |nr, arg0| eval(&f, AUDIT_ARCH, nr, arg0);
        for nr in [
            libc::SYS_socket,
            libc::SYS_socketpair,
            libc::SYS_connect,
            libc::SYS_ptrace,
        ] {
            assert_eq!(run(nr, 0), RET_EPERM, "{nr}");
        }
        assert_eq!(run(libc::SYS_mount, 0), RET_EPERM);
        assert_eq!(run(libc::SYS_unshare, 0), RET_EPERM);
        assert_eq!(run(libc::SYS_clone3, 0), RET_ENOSYS);
        let thread = (libc::CLONE_VM | libc::CLONE_THREAD | libc::CLONE_SIGHAND) as u64;
        assert_eq!(run(libc::SYS_clone, thread), RET_ALLOW);
        assert_eq!(run(libc::SYS_clone, libc::SIGCHLD as u64), RET_EPERM);
        let vfork = (libc::CLONE_VM | libc::CLONE_VFORK) as u64 | libc::SIGCHLD as u64;
        assert_eq!(run(libc::SYS_clone, vfork), RET_EPERM);
        assert_eq!(run(libc::SYS_execve, exec), RET_ALLOW);
        assert_eq!(run(libc::SYS_execve, exec + 8), RET_EPERM);
        assert_eq!(run(libc::SYS_execve, exec ^ (1 << 33)), RET_EPERM);
        assert_eq!(run(libc::SYS_kill, 1), RET_ALLOW);
        assert_eq!(run(libc::SYS_kill, 2), RET_EPERM);
        assert_eq!(run(libc::SYS_kill, u64::MAX), RET_EPERM, "kill(-1)");
        assert_eq!(run(libc::SYS_kill, 0), RET_EPERM, "kill(0)");
        assert_eq!(run(libc::SYS_tgkill, 1), RET_ALLOW);
        for nr in [
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_openat,
            libc::SYS_mmap,
            libc::SYS_futex,
        ] {
            assert_eq!(run(nr, 0), RET_ALLOW, "{nr}");
        }
        // Another ABI is killed whatever the call.
        assert_eq!(eval(&f, 0x4000_0003, libc::SYS_read, 0), RET_KILL);
        #[cfg(target_arch = "x86_64")]
        assert_eq!(run(0x4000_0000 + libc::SYS_socket, 0), RET_KILL, "x32");
        // Without a PID namespace, no signal at all.
        let weak = seccomp_filter(exec, false);
        assert_eq!(eval(&weak, AUDIT_ARCH, libc::SYS_kill, 1), RET_EPERM);
        assert_eq!(eval(&weak, AUDIT_ARCH, libc::SYS_kill, 0), RET_EPERM);
    }
}
