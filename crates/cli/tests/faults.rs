//! Fault injection on the real binary under load: the SQLite disk fills up,
//! PostgreSQL becomes unreachable, the process is killed with `kill -9`.
//! Whatever the fault, every request answered 200 is durable — its session,
//! its end, its request-log row — and the rest were refused with a 503; the
//! server recovers by itself once the fault is gone.
//!
//! The disk-full test mounts a tmpfs (root only) and says so when it
//! cannot. The PostgreSQL test runs in a fresh schema of the test
//! PostgreSQL (see `sessiongate_testkit::postgres`: `$DATABASE_URL`, and
//! `SESSIONGATE_SKIP_POSTGRES=1` to skip it), through a TCP proxy of its
//! own that it cuts and restores.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection, SqliteConnection};

use common::BIN;
use sessiongate_testkit::postgres::{self, Schema};
use sessiongate_testkit::process::{free_port, Gateway};
use sessiongate_testkit::tmpfs::Tmpfs;
use sessiongate_testkit::wait_for;

/// What the load was told.
#[derive(Default)]
struct Ledger {
    /// Sessions whose `initialize` answered 200.
    created: Vec<String>,
    /// Sessions whose `DELETE` answered 200.
    deleted: HashSet<String>,
    /// Sessions whose `DELETE` was refused: not acknowledged, so either
    /// state is right (a cut connection may lose the answer to a commit).
    delete_refused: HashSet<String>,
    /// Requests answered 200 that log a row (`initialize`, `tools/call`).
    logged: u64,
    /// Requests refused with 503.
    refused: u64,
    /// Requests that got no answer (the server was killed).
    unanswered: u64,
}

struct Load {
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// `workers` clients, each opening a session, calling `echo` on it and
    /// deleting every other one, over and over; while `initialize` is
    /// refused, each calls `echo` on the first session it opened.
    fn start(gw: &Arc<Gateway>, workers: usize) -> Load {
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..workers)
            .map(|w| {
                let (gw, ledger, stop) = (gw.clone(), ledger.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut round = 0u64;
                    let mut home: Option<String> = None;
                    while !stop.load(Ordering::Relaxed) {
                        round += 1;
                        // False once the server is gone.
                        let note = |r: Result<(), (u16, String)>| {
                            let mut l = ledger.lock().unwrap();
                            match r {
                                Ok(()) => l.logged += 1,
                                Err((503, _)) => l.refused += 1,
                                Err((0, _)) => {
                                    l.unanswered += 1;
                                    return false;
                                }
                                Err((status, body)) => panic!("{status}: {body}"),
                            }
                            true
                        };
                        let id = match gw.initialize(&format!("worker-{w}")).await {
                            Ok(id) => {
                                let mut l = ledger.lock().unwrap();
                                l.created.push(id.clone());
                                l.logged += 1;
                                if home.is_none() {
                                    // Kept: never deleted, called on while
                                    // new sessions are refused.
                                    home = Some(id);
                                    continue;
                                }
                                id
                            }
                            Err((503, _)) => {
                                ledger.lock().unwrap().refused += 1;
                                // Sessions that exist go on meanwhile.
                                let Some(home) = &home else { continue };
                                if !note(gw.echo(home, &format!("{w}-{round}")).await) {
                                    return;
                                }
                                continue;
                            }
                            Err((0, _)) => {
                                ledger.lock().unwrap().unanswered += 1;
                                return;
                            }
                            Err((status, body)) => panic!("initialize: {status}: {body}"),
                        };
                        for i in 0..3 {
                            if !note(gw.echo(&id, &format!("{w}-{round}-{i}")).await) {
                                return;
                            }
                        }
                        if round.is_multiple_of(2) {
                            match gw.delete(&id).await {
                                Ok(()) => {
                                    ledger.lock().unwrap().deleted.insert(id);
                                }
                                Err((503, _)) => {
                                    let mut l = ledger.lock().unwrap();
                                    l.refused += 1;
                                    l.delete_refused.insert(id);
                                }
                                Err((0, _)) => {
                                    let mut l = ledger.lock().unwrap();
                                    l.unanswered += 1;
                                    l.delete_refused.insert(id);
                                    return;
                                }
                                Err((status, body)) => panic!("DELETE: {status}: {body}"),
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            ledger,
            stop,
            workers,
        }
    }

    fn refused(&self) -> u64 {
        self.ledger.lock().unwrap().refused
    }

    async fn finish(self) -> Ledger {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            w.await.expect("a load worker failed");
        }
        Arc::try_unwrap(self.ledger)
            .ok()
            .unwrap()
            .into_inner()
            .unwrap()
    }
}

/// Sessions by status and request-log rows, as the database holds them.
struct Stored {
    status: std::collections::HashMap<String, String>,
    requests: u64,
}

/// What the database behind `conn` holds, read on that connection of its
/// own and closed after.
async fn stored<C>(mut conn: C) -> Stored
where
    C: Connection,
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
    for<'r> (String, String): sqlx::FromRow<'r, <C::Database as sqlx::Database>::Row>,
    for<'r> i64: sqlx::Decode<'r, C::Database> + sqlx::Type<C::Database>,
    usize: sqlx::ColumnIndex<<C::Database as sqlx::Database>::Row>,
    for<'q> <C::Database as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, C::Database>,
{
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT session_id, status FROM sessions")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let requests: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM requests")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    Stored {
        status: rows.into_iter().collect(),
        requests: requests as u64,
    }
}

async fn sqlite_stored(db: &Path) -> Stored {
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(db);
    stored(SqliteConnection::connect_with(&options).await.unwrap()).await
}

async fn pg_stored(url: &str) -> Stored {
    stored(PgConnection::connect(url).await.unwrap()).await
}

/// Every acknowledged creation and end is in `stored`: a session whose
/// DELETE answered 200 has ended, one never deleted is active. Returns the
/// sessions that are missing or in the wrong state, with their state.
fn lost_sessions(ledger: &Ledger, stored: &Stored) -> Vec<(String, Option<String>)> {
    ledger
        .created
        .iter()
        .map(|id| (id, stored.status.get(id).map(String::as_str)))
        .filter(|&(id, status)| {
            let right = if ledger.deleted.contains(id) {
                status == Some("disconnected")
            } else if ledger.delete_refused.contains(id) {
                status.is_some()
            } else {
                status == Some("active")
            };
            !right
        })
        .map(|(id, status)| (id.clone(), status.map(str::to_string)))
        .collect()
}

/// Waits (briefly) for the request log's write-behind to catch up.
async fn rows_settle<F, Fut>(want: u64, mut read: F) -> Stored
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Stored>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stored = read().await;
        if stored.requests >= want || Instant::now() > deadline {
            return stored;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ------------------------------------------------------------- disk full

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_with_503_loses_nothing_and_recovers_by_itself() {
    let fs = match Tmpfs::mount("256m") {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("SKIPPED: the disk-full test needs to mount a tmpfs (root): {why}");
            return;
        }
    };
    let data = fs.path().join("data");
    let port = free_port();
    let data_arg = data.to_str().unwrap();
    let gw = Arc::new(Gateway::start(BIN, port, &["--data-dir", data_arg]).await);
    let load = Load::start(&gw, 8);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let ballast = fs.fill();
    wait_for(
        "a 503 while the disk is full",
        Duration::from_secs(30),
        || {
            let refused = load.refused();
            async move { refused > 0 }
        },
    )
    .await;
    wait_for("health degraded", Duration::from_secs(5), || {
        let gw = gw.clone();
        async move {
            let health = gw.health().await;
            health["status"] == "degraded"
                && health["store_health"]["ok"] == false
                && health["reason"].as_str().unwrap().contains("writes")
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    std::fs::remove_file(&ballast).unwrap();
    let recovered = wait_for(
        "an initialize once space is back",
        Duration::from_secs(5),
        || {
            let gw = gw.clone();
            async move { gw.initialize("probe").await.is_ok() }
        },
    )
    .await;
    eprintln!("initialize answered 200 again {recovered:?} after space came back");
    wait_for("health back to healthy", Duration::from_secs(5), || {
        let gw = gw.clone();
        async move { gw.health().await["status"] == "healthy" }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut ledger = load.finish().await;
    eprintln!(
        "acknowledged: {} sessions, {} ends, {} logged requests; refused: {}",
        ledger.created.len(),
        ledger.deleted.len(),
        ledger.logged,
        ledger.refused
    );

    assert_eq!(ledger.unanswered, 0);
    // The one probe that answered 200 logged a row too.
    let db = data.join("sessiongate.db");
    let want_rows = ledger.logged + 1;
    let stored = rows_settle(want_rows, || sqlite_stored(&db)).await;
    assert_eq!(lost_sessions(&ledger, &stored), []);
    assert!(
        stored.requests >= want_rows,
        "request-log rows: {} stored of {want_rows} acknowledged",
        stored.requests
    );

    // A session whose DELETE was refused goes on, and can be ended now.
    let refused: Vec<&String> = ledger.delete_refused.iter().collect();
    eprintln!("{} DELETEs were refused", refused.len());
    if let Some(id) = refused.first() {
        gw.echo(id, "after a refused DELETE").await.unwrap();
        gw.delete(id).await.unwrap();
        assert_eq!(sqlite_stored(&db).await.status[*id], "disconnected");
        ledger.deleted.insert(id.to_string());
    }

    // And after a hard restart.
    let gw = Arc::try_unwrap(gw).ok().unwrap();
    gw.kill();
    let gw = Gateway::start(BIN, port, &["--data-dir", data_arg]).await;
    let stored = sqlite_stored(&db).await;
    assert_eq!(lost_sessions(&ledger, &stored), []);
    assert!(stored.requests >= want_rows);
    let alive = ledger
        .created
        .iter()
        .find(|id| !ledger.deleted.contains(*id))
        .unwrap();
    gw.echo(alive, "after the restart").await.unwrap();
    gw.stop();
}

// ------------------------------------------------------ PostgreSQL outage

/// A TCP proxy in front of PostgreSQL that can be cut: cutting closes every
/// connection through it, and while cut it closes new ones at once.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let accept = tokio::spawn({
            let (up, conns) = (up.clone(), conns.clone());
            async move {
                loop {
                    let Ok((mut client, _)) = listener.accept().await else {
                        return;
                    };
                    if !up.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    let upstream = upstream.clone();
                    let task = tokio::spawn(async move {
                        if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    conns.lock().unwrap().push(task.abort_handle());
                }
            }
        });
        Proxy {
            port,
            up,
            conns,
            accept,
        }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// `scheme://userinfo@host:port/rest` → (`host:port`, the URL with
/// `host:port` replaced by `with`).
fn split_authority(url: &str, with: &str) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), authority),
    };
    let hostport = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:5432")
    };
    (hostport, format!("{scheme}://{userinfo}{with}{tail}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unreachable_for_10_s_loses_no_session_and_no_request_row() {
    if postgres::skipped("the PostgreSQL outage test") {
        return;
    }
    let schema = Schema::create("faults").await;
    let direct = schema.url.clone();

    let (upstream, _) = split_authority(&direct, "");
    let proxy = Proxy::start(upstream).await;
    let (_, through_proxy) = split_authority(&direct, &format!("127.0.0.1:{}", proxy.port));
    let port = free_port();
    // A short request-log queue, so that it fills during the outage: the
    // requests behind it wait, then are refused, and no row is dropped.
    let gw = Arc::new(
        Gateway::start(
            BIN,
            port,
            &[
                "--database-url",
                &through_proxy,
                "--request-log-queue",
                "256",
            ],
        )
        .await,
    );
    let load = Load::start(&gw, 8);
    tokio::time::sleep(Duration::from_secs(1)).await;

    proxy.cut();
    let cut = Instant::now();
    wait_for("health degraded", Duration::from_secs(5), || {
        let gw = gw.clone();
        async move { gw.health().await["status"] == "degraded" }
    })
    .await;
    let refused_during = wait_for("a 503 during the outage", Duration::from_secs(9), || {
        let refused = load.refused();
        async move { refused > 0 }
    })
    .await;
    eprintln!("first 503 {refused_during:?} into the outage");
    wait_for("the request-log queue full", Duration::from_secs(8), || {
        let gw = gw.clone();
        async move { gw.health().await["store_health"]["request_log_queue_depth"] == 256 }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(cut.elapsed())).await;

    proxy.restore();
    let resumed = wait_for(
        "an initialize after the outage",
        Duration::from_secs(5),
        || {
            let gw = gw.clone();
            async move { gw.initialize("probe").await.is_ok() }
        },
    )
    .await;
    eprintln!("initialize answered 200 again {resumed:?} after PostgreSQL came back");
    assert!(
        resumed < Duration::from_secs(1),
        "resumed after {resumed:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ledger = load.finish().await;
    eprintln!(
        "acknowledged: {} sessions, {} ends, {} logged requests; refused: {}",
        ledger.created.len(),
        ledger.deleted.len(),
        ledger.logged,
        ledger.refused
    );

    assert_eq!(ledger.unanswered, 0);
    let want_rows = ledger.logged + 1;
    let stored = rows_settle(want_rows, || pg_stored(&direct)).await;
    assert_eq!(lost_sessions(&ledger, &stored), []);
    assert!(
        stored.requests >= want_rows,
        "request-log rows: {} stored of {want_rows} acknowledged",
        stored.requests
    );
    assert_eq!(gw.health().await["status"], "healthy");

    Arc::try_unwrap(gw).ok().unwrap().stop();
    schema.drop().await.unwrap();
}

// ---------------------------------------------------------------- kill -9

/// A `kill -9` under load loses no acknowledged session. Request-log rows
/// are written behind, so the last moments' rows may be lost: this measures
/// how many (acknowledged requests minus stored rows) and prints it; the
/// window is stated in docs/architecture.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_session() {
    let dir = tempfile::tempdir().unwrap();
    let data_arg = dir.path().to_str().unwrap();
    let port = free_port();
    let gw = Arc::new(Gateway::start(BIN, port, &["--data-dir", data_arg]).await);
    let load = Load::start(&gw, 8);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Killed mid-load: requests in flight get no answer and count for
    // nothing.
    gw.kill_now();
    let ledger = load.finish().await;
    drop(gw);
    eprintln!(
        "acknowledged before kill -9: {} sessions, {} ends, {} logged requests",
        ledger.created.len(),
        ledger.deleted.len(),
        ledger.logged
    );
    assert!(ledger.created.len() > 10, "the load ran");

    let db = dir.path().join("sessiongate.db");
    let gw = Gateway::start(BIN, port, &["--data-dir", data_arg]).await;
    let stored = sqlite_stored(&db).await;
    assert_eq!(lost_sessions(&ledger, &stored), []);
    let lost_rows = ledger.logged.saturating_sub(stored.requests);
    eprintln!(
        "request-log rows lost to kill -9: {lost_rows} of {} acknowledged ({} stored)",
        ledger.logged, stored.requests
    );
    let alive = ledger
        .created
        .iter()
        .find(|id| !ledger.deleted.contains(*id))
        .unwrap();
    gw.echo(alive, "after kill -9").await.unwrap();
    gw.stop();
}
