//! The HTTP floor: an axum server that only reads each callback's body and answers an empty 200.
//! It runs as a separate process (this tool started again with `--serve-floor`), on the same
//! runtime settings as `trumpet serve`, so that the same load against it shows how much of the
//! machine the HTTP layer alone takes — the yardstick for the callback path.

use std::process::{Child, Command, Stdio};

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::{get, post};

/// Serves the floor on `127.0.0.1:port` until the process is killed.
pub fn serve(port: u16) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        let app = Router::new()
            .route("/healthz", get(|| async { StatusCode::OK }))
            .route(
                "/wecom/robot/{bot}",
                post(|body: Bytes| async move {
                    // Read, as the service does, and answer nothing.
                    std::hint::black_box(body.len());
                    StatusCode::OK
                }),
            );
        axum::serve(listener, app).await.map_err(|e| e.to_string())
    })
}

/// This tool started again as a floor server on `port`.
pub struct FloorProcess {
    child: Child,
    pub base: String,
}

impl FloorProcess {
    pub fn start() -> Result<FloorProcess, String> {
        let port = crate::common::free_port()?;
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let child = Command::new(exe)
            .arg("--serve-floor")
            .arg(port.to_string())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the floor server: {e}"))?;
        Ok(FloorProcess {
            child,
            base: format!("http://127.0.0.1:{port}"),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for FloorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
