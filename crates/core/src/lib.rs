//! The domain of sessiongate: what a session is, how it lives and ends, and
//! the figures reported about it; and the tasks of the tasks extension
//! ([`task`]), durable like sessions.
//!
//! Nothing here does network or database I/O itself. Persistence goes through
//! the ports of [`store`] (sessions, request log, analytics, tokens, event
//! log), implemented by `sessiongate-store`; the MCP transport and the
//! management API sit on top of [`lifecycle::Lifecycle`], the API's
//! reports on [`analytics::Analytics`].

pub mod analytics;
pub mod client_kind;
pub mod clock;
pub mod health;
pub mod ids;
pub mod lifecycle;
pub mod request_log;
pub mod session;
pub mod store;
pub mod store_health;
pub mod stream;
pub mod task;
pub mod token;
pub mod upstream;

pub use clock::{Clock, ManualClock, SharedClock, SystemClock, Timestamp};
pub use ids::{SessionId, TaskId};
pub use session::{DisconnectReason, SessionRecord, SessionStatus};
