//! The stdio connector: each link is a child process speaking
//! newline-delimited JSON-RPC on its stdin and stdout.
//!
//! The gateway's [`OutboundId`]s are the wire ids, so responses match
//! pending requests directly. Process hygiene is this module's: a child gets
//! its own process group and `PR_SET_PDEATHSIG(SIGKILL)`, so it dies with the
//! gateway even on `kill -9`; its pid and start time are recorded in a file
//! under the children directory while it runs, and [`reap_orphans`] kills
//! the process groups a previous run left behind (a child that reset its
//! parent-death signal, or a grandchild). stderr goes line by line into the
//! log under the upstream's name, the last line kept for the error that
//! reports the child's exit. Lines are bounded ([`MAX_LINE`]): a longer one
//! is an error for that line only, as is a line that is not JSON.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use sessiongate_core::upstream::UpstreamName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{oneshot, watch};

use super::{
    http_wire, incoming_channel, Connector, Incoming, IncomingTx, Link, LinkError, Opened,
    OutboundId, RpcError,
};
use crate::config::StdioConfig;

/// The longest line read from a child's stdout or stderr.
pub const MAX_LINE: usize = 16 * 1024 * 1024;

/// How long a failed write waits for the child's exit status, to report it.
const EXIT_WAIT: Duration = Duration::from_secs(1);

/// Messages from the child not yet taken by the relay before reading pauses.
const INCOMING_QUEUED: usize = 256;

/// Opens child processes for one stdio upstream.
pub struct StdioConnector {
    name: UpstreamName,
    config: StdioConfig,
    children_dir: PathBuf,
}

impl StdioConnector {
    /// Children's pid files go in `children_dir`, created on the first start.
    pub fn new(name: UpstreamName, config: StdioConfig, children_dir: PathBuf) -> Self {
        StdioConnector {
            name,
            config,
            children_dir,
        }
    }
}

#[async_trait]
impl Connector for StdioConnector {
    async fn open(&self, _resume: Option<&str>) -> Result<Opened, LinkError> {
        let refused = |reason: String| LinkError::Transport {
            reason,
            delivered: false,
        };
        let mut command = Command::new(&self.config.command);
        command
            .args(&self.config.args)
            .envs(&self.config.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(cwd) = &self.config.cwd {
            command.current_dir(cwd);
        }
        let gateway = std::process::id() as libc::pid_t;
        // SAFETY: between fork and exec only async-signal-safe calls are
        // made (setpgid, prctl, getppid, _exit), touching no memory of the
        // parent.
        unsafe {
            command.pre_exec(move || {
                // Its own group, so the whole tree can be killed at once.
                if libc::setpgid(0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The gateway died before the signal was armed.
                if libc::getppid() != gateway {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(|e| {
            refused(format!(
                "upstream {}: cannot start {:?}: {e}",
                self.name, self.config.command
            ))
        })?;
        let pid = child
            .id()
            .ok_or_else(|| refused(format!("upstream {}: the child exited at once", self.name)))?;
        let pid_file = PidFile::create(&self.children_dir, pid);
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(refused(format!(
                "upstream {}: the child's pipes were not opened",
                self.name
            )));
        };
        tracing::debug!(upstream = %self.name, pid, "started an upstream child");

        let (incoming_tx, incoming) = incoming_channel(INCOMING_QUEUED);
        let shared = Arc::new(Shared {
            name: self.name.clone(),
            pid,
            pending: Mutex::new(Some(HashMap::new())),
            closed: AtomicBool::new(false),
            closed_reason: std::sync::OnceLock::new(),
            reaped: AtomicBool::new(false),
            last_stderr: Mutex::new(None),
        });
        let (exited_tx, exited) = watch::channel(None);
        tokio::spawn(read_stderr(shared.clone(), stderr));
        tokio::spawn(wait_for_exit(shared.clone(), child, pid_file, exited_tx));
        tokio::spawn(read_stdout(
            shared.clone(),
            stdout,
            incoming_tx,
            exited.clone(),
        ));
        let link = StdioLink {
            shared,
            exited,
            stdin: tokio::sync::Mutex::new(stdin),
            timeout: self.config.request_timeout,
        };
        Ok(Opened {
            link: Arc::new(link),
            incoming,
        })
    }
}

type Pending = HashMap<OutboundId, oneshot::Sender<Result<Value, LinkError>>>;

/// What the link's tasks share with it.
struct Shared {
    name: UpstreamName,
    pid: u32,
    /// `None` once the child is gone: a request then fails at once.
    pending: Mutex<Option<Pending>>,
    closed: AtomicBool,
    closed_reason: std::sync::OnceLock<String>,
    /// Set once the child was waited for: its pid may be reused from then
    /// on, so its group is never signalled again.
    reaped: AtomicBool,
    last_stderr: Mutex<Option<String>>,
}

impl Shared {
    fn pending(&self) -> std::sync::MutexGuard<'_, Option<Pending>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn last_stderr(&self) -> Option<String> {
        self.last_stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Why the child is gone, for every request it leaves unanswered.
    fn gone_reason(&self, status: Option<ExitStatus>) -> String {
        let status = match status {
            Some(s) => s.to_string(),
            None => "closed its stdout".to_string(),
        };
        match self.last_stderr() {
            Some(line) => format!(
                "upstream {}'s process {} exited ({status}); its last stderr line: {line}",
                self.name, self.pid
            ),
            None => format!(
                "upstream {}'s process {} exited ({status})",
                self.name, self.pid
            ),
        }
    }

    /// Marks the link gone and fails every pending request.
    fn fail_all(&self, reason: &str) {
        let _ = self.closed_reason.set(reason.to_string());
        self.closed.store(true, Ordering::Release);
        let pending = self.pending().take().unwrap_or_default();
        for (_, answer) in pending {
            let _ = answer.send(Err(LinkError::Gone {
                reason: reason.to_string(),
                delivered: true,
            }));
        }
    }

    fn kill_group(&self) {
        if self.reaped.load(Ordering::Acquire) {
            return;
        }
        // SAFETY: a plain syscall; the group is the child's own (setpgid).
        unsafe {
            libc::killpg(self.pid as libc::pid_t, libc::SIGKILL);
        }
    }
}

/// Waits for the child to exit, then kills what is left of its group (so a
/// grandchild holding stdout open does not keep the link half alive) and
/// removes its pid file.
async fn wait_for_exit(
    shared: Arc<Shared>,
    mut child: Child,
    pid_file: Option<PidFile>,
    exited: watch::Sender<Option<Option<ExitStatus>>>,
) {
    let status = child.wait().await.ok();
    shared.kill_group();
    shared.reaped.store(true, Ordering::Release);
    drop(pid_file);
    tracing::debug!(upstream = %shared.name, pid = shared.pid, ?status, "an upstream child exited");
    exited.send_replace(Some(status));
}

/// Reads the child's stdout to its end, routing responses to their
/// requests and passing the rest to the relay; then fails what is pending.
async fn read_stdout(
    shared: Arc<Shared>,
    stdout: tokio::process::ChildStdout,
    incoming: IncomingTx,
    mut exited: watch::Receiver<Option<Option<ExitStatus>>>,
) {
    let mut lines = Lines::new(stdout, MAX_LINE);
    loop {
        let line = match lines.next().await {
            Ok(Some(Line::Text(line))) => line,
            Ok(Some(Line::TooLong)) => {
                tracing::warn!(upstream = %shared.name, "skipped a stdout line longer than {MAX_LINE} bytes");
                continue;
            }
            Ok(None) => break,
            Err(e) => {
                tracing::warn!(upstream = %shared.name, "cannot read the child's stdout: {e}");
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let Ok(message) = serde_json::from_str::<Value>(&line) else {
            tracing::warn!(upstream = %shared.name, line = %truncate(&line), "skipped a stdout line that is not JSON-RPC");
            continue;
        };
        route(&shared, message, &incoming).await;
    }
    // The child's exit status names the reason; it follows stdout's end.
    let status = match exited.wait_for(|s| s.is_some()).await {
        Ok(s) => s.flatten(),
        Err(_) => None,
    };
    shared.fail_all(&shared.gone_reason(status));
}

async fn route(shared: &Shared, mut message: Value, incoming: &IncomingTx) {
    let method = message
        .get("method")
        .and_then(Value::as_str)
        .map(str::to_string);
    let params = message.get_mut("params").map(Value::take);
    let id = message.get_mut("id").map(Value::take);
    let delivered = match (method, id) {
        (Some(method), Some(id)) => {
            incoming
                .send(Incoming::Request {
                    id,
                    method,
                    params,
                    related: None,
                })
                .await
        }
        (Some(method), None) => {
            incoming
                .send(Incoming::Notification {
                    method,
                    params,
                    related: None,
                })
                .await
        }
        (None, Some(id)) => {
            let Some(id) = id.as_u64() else {
                tracing::warn!(upstream = %shared.name, %id, "skipped a response to an id the gateway never sent");
                return;
            };
            let outcome = match message.get_mut("error") {
                Some(error) => Err(LinkError::Rpc(rpc_error(error.take()))),
                None => Ok(message
                    .get_mut("result")
                    .map(Value::take)
                    .unwrap_or(Value::Null)),
            };
            let answer = shared.pending().as_mut().and_then(|p| p.remove(&id));
            match answer {
                Some(answer) => {
                    let _ = answer.send(outcome);
                }
                None => {
                    tracing::debug!(upstream = %shared.name, id, "a response came for a request no longer waiting")
                }
            }
            return;
        }
        (None, None) => {
            tracing::warn!(upstream = %shared.name, "skipped a stdout message that is neither request, response nor notification");
            return;
        }
    };
    // Nobody listens any more: the relay let go of the link.
    let _ = delivered;
}

fn rpc_error(error: Value) -> RpcError {
    RpcError {
        code: error
            .get("code")
            .and_then(Value::as_i64)
            .and_then(|c| i32::try_from(c).ok())
            .unwrap_or(-32603),
        message: error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("the upstream answered an error without a message")
            .to_string(),
        data: error.get("data").cloned(),
    }
}

/// Logs the child's stderr under the upstream's name, keeping the last line.
async fn read_stderr(shared: Arc<Shared>, stderr: tokio::process::ChildStderr) {
    let mut lines = Lines::new(stderr, 64 * 1024);
    while let Ok(Some(line)) = lines.next().await {
        let Line::Text(line) = line else {
            continue;
        };
        if line.trim().is_empty() {
            continue;
        }
        tracing::info!(upstream = %shared.name, pid = shared.pid, "stderr: {line}");
        *shared.last_stderr.lock().unwrap_or_else(|e| e.into_inner()) = Some(line);
    }
}

/// One line read by [`Lines`].
enum Line {
    /// Its text, less the line end; invalid UTF-8 replaced.
    Text(String),
    /// Longer than the limit: skipped whole, never held in memory.
    TooLong,
}

/// Reads lines of at most `max` bytes; a longer one is reported and
/// skipped to its end, so a child cannot make the gateway buffer without
/// bound.
struct Lines<R> {
    reader: BufReader<R>,
    max: usize,
    line: Vec<u8>,
}

impl<R: AsyncRead + Unpin> Lines<R> {
    fn new(reader: R, max: usize) -> Self {
        Lines {
            reader: BufReader::new(reader),
            max,
            line: Vec::new(),
        }
    }

    /// The next line; `None` at the end.
    async fn next(&mut self) -> std::io::Result<Option<Line>> {
        self.line.clear();
        let mut too_long = false;
        loop {
            let available = self.reader.fill_buf().await?;
            if available.is_empty() {
                // The end: a last line without its newline still counts.
                return Ok(match (too_long, self.line.is_empty()) {
                    (true, _) => Some(Line::TooLong),
                    (false, true) => None,
                    (false, false) => Some(self.text()),
                });
            }
            let (chunk, end) = match available.iter().position(|&b| b == b'\n') {
                Some(at) => (&available[..at], Some(at + 1)),
                None => (available, None),
            };
            if !too_long && self.line.len() + chunk.len() <= self.max {
                self.line.extend_from_slice(chunk);
            } else {
                too_long = true;
                self.line = Vec::new();
            }
            let consumed = end.unwrap_or(available.len());
            self.reader.consume(consumed);
            if end.is_some() {
                return Ok(Some(match too_long {
                    true => Line::TooLong,
                    false => self.text(),
                }));
            }
        }
    }

    fn text(&mut self) -> Line {
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        Line::Text(String::from_utf8_lossy(&self.line).into_owned())
    }
}

fn truncate(line: &str) -> &str {
    match line.char_indices().nth(200) {
        Some((at, _)) => &line[..at],
        None => line,
    }
}

/// One child process.
struct StdioLink {
    shared: Arc<Shared>,
    /// The child's exit status, once it exited.
    exited: watch::Receiver<Option<Option<ExitStatus>>>,
    /// Unbuffered: each message is one write of its whole line.
    stdin: tokio::sync::Mutex<ChildStdin>,
    timeout: Duration,
}

impl StdioLink {
    /// Writes one message (serialized by `http_wire`) and its newline.
    async fn write(&self, mut line: Vec<u8>) -> Result<(), LinkError> {
        line.push(b'\n');
        let mut stdin = self.stdin.lock().await;
        let written = stdin.write_all(&line).await;
        drop(stdin);
        if let Err(e) = written {
            // A closed pipe means the child is exiting: its status and last
            // stderr line say more than the pipe does.
            let mut exited = self.exited.clone();
            let status = tokio::time::timeout(EXIT_WAIT, exited.wait_for(|s| s.is_some())).await;
            let reason = match status {
                Ok(Ok(status)) => self.shared.gone_reason(status.flatten()),
                _ => format!(
                    "cannot write to upstream {}'s process {}: {e}",
                    self.shared.name, self.shared.pid
                ),
            };
            return Err(LinkError::Gone {
                reason,
                delivered: false,
            });
        }
        Ok(())
    }

    fn gone(&self) -> LinkError {
        LinkError::Gone {
            reason: format!(
                "upstream {}'s process {} has exited",
                self.shared.name, self.shared.pid
            ),
            delivered: false,
        }
    }
}

#[async_trait]
impl Link for StdioLink {
    async fn request(
        &self,
        id: OutboundId,
        method: &str,
        params: Option<&Value>,
    ) -> Result<Value, LinkError> {
        let (tx, answer) = oneshot::channel();
        match self.shared.pending().as_mut() {
            Some(pending) => pending.insert(id, tx),
            None => return Err(self.gone()),
        };
        if let Err(e) = self
            .write(http_wire::request_vec(Some(id), method, params))
            .await
        {
            self.shared.pending().as_mut().map(|p| p.remove(&id));
            return Err(e);
        }
        match tokio::time::timeout(self.timeout, answer).await {
            Ok(Ok(outcome)) => outcome,
            // The reader dropped every sender: the child is gone.
            Ok(Err(_)) => Err(LinkError::Gone {
                reason: self.shared.gone_reason(None),
                delivered: true,
            }),
            Err(_) => {
                self.shared.pending().as_mut().map(|p| p.remove(&id));
                Err(LinkError::Timeout(self.timeout))
            }
        }
    }

    async fn notify(&self, method: &str, params: Option<&Value>) -> Result<(), LinkError> {
        if self.is_closed() {
            return Err(self.gone());
        }
        self.write(http_wire::request_vec(None, method, params))
            .await
    }

    async fn respond(&self, id: Value, outcome: Result<Value, RpcError>) -> Result<(), LinkError> {
        self.write(http_wire::response_vec(&id, &outcome)).await
    }

    fn session_id(&self) -> Option<String> {
        None
    }

    fn set_protocol_version(&self, _version: &str) {}

    fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    fn closed_reason(&self) -> Option<String> {
        self.shared.closed_reason.get().cloned()
    }

    async fn close(&self) {
        self.shared.kill_group();
    }
}

impl Drop for StdioLink {
    fn drop(&mut self) {
        // The last holder let go: the child must not outlive its link.
        self.shared.kill_group();
    }
}

/// A running child's record in the children directory: the file is named
/// by its pid and holds its start time, so a reused pid is not mistaken for
/// it.
struct PidFile(PathBuf);

impl PidFile {
    /// Best effort: without a record the child still dies with the gateway
    /// by its parent-death signal.
    fn create(dir: &Path, pid: u32) -> Option<PidFile> {
        let start = start_time(pid)?;
        let path = dir.join(pid.to_string());
        let written = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, start));
        match written {
            Ok(()) => Some(PidFile(path)),
            Err(e) => {
                tracing::warn!(path = %path.display(), "cannot record an upstream child: {e}");
                None
            }
        }
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A process's start time (field 22 of `/proc/PID/stat`, in clock ticks
/// since boot).
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses; the
    // fields after its closing parenthesis are plain.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19).map(str::to_string)
}

/// Kills the process groups of children a previous run recorded in `dir`
/// that still run (it was killed before it could end them), and clears the
/// records. Returns the pids killed.
pub fn reap_orphans(dir: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut killed = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let pid = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok());
        if let Some(pid) = pid {
            let recorded = std::fs::read_to_string(&path).ok();
            if recorded.is_some() && recorded == start_time(pid) {
                // SAFETY: a plain syscall on the group the child led.
                unsafe {
                    libc::killpg(pid as libc::pid_t, libc::SIGKILL);
                }
                tracing::warn!(pid, "killed an upstream child a previous run left behind");
                killed.push(pid);
            }
        }
        let _ = std::fs::remove_file(&path);
    }
    killed
}
