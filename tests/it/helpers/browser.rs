//! A real browser for the console's tests: Debian's Chromium driven through its ChromeDriver
//! (WebDriver over HTTP), headless, with a fresh profile and no background traffic. `.ci/run`
//! installs both packages; a machine without them fails these tests with a message that says
//! what to install (they are never skipped).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// Where Debian's packages put them; `CHROME_BIN` and `CHROMEDRIVER` say otherwise.
const CHROME: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long a page gets to show what a test waits for.
pub const WAIT: Duration = Duration::from_secs(15);

/// A headless Chromium and its driver; both stop when this is dropped.
pub struct Browser {
    pub client: Client,
    _driver: Child,
    _profile: tempfile::TempDir,
}

fn path_of(variable: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(variable).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.exists(),
        "{} not found: install Debian's chromium and chromium-driver packages (as .ci/run does), \
         or set {variable}",
        path.display()
    );
    path
}

impl Browser {
    /// Starts ChromeDriver on a free port and opens a headless browser session.
    pub async fn start() -> Browser {
        let chrome = path_of("CHROME_BIN", CHROME);
        let driver_path = path_of("CHROMEDRIVER", CHROMEDRIVER);
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().unwrap();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chrome,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            // Plain HTTP to the local driver: no TLS to set up.
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(e) if started.elapsed() < Duration::from_secs(20) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("no browser session from chromedriver: {e}"),
            }
        };
        Browser {
            client,
            _driver: driver,
            _profile: profile,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// Waits for an element matching `css` and answers it.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
    }

    /// Types `text` into the field matching `css`, replacing what it held.
    pub async fn type_into(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    /// Waits until the text of the element matching `css` satisfies `check`; answers it.
    pub async fn wait_text(&self, css: &str, check: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        let mut last = String::new();
        while started.elapsed() < WAIT {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = element.text().await
            {
                if check(&text) {
                    return text;
                }
                last = text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{css} never showed what was expected; last: {last:?}");
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub async fn run(&self, script: &str, args: Vec<Value>) -> Value {
        self.client.execute(script, args).await.unwrap()
    }

    /// Runs an async `script` whose last argument is the callback to answer with.
    pub async fn run_async(&self, script: &str, args: Vec<Value>) -> Value {
        self.client.execute_async(script, args).await.unwrap()
    }

    /// Signs in through the console's form.
    pub async fn sign_in(&self, console: &str, name: &str, password: &str) {
        self.goto(console).await;
        self.type_into("input[name=username]", name).await;
        self.type_into("input[name=password]", password).await;
        self.click("#sign-in-form button[type=submit]").await;
    }

    /// Every address the page loaded anything from (documents, scripts, styles, images, API).
    pub async fn loaded_from(&self) -> Vec<String> {
        let value = self
            .run(
                "return performance.getEntriesByType('resource').map(e => e.name)\
                   .concat([location.href]);",
                vec![],
            )
            .await;
        serde_json::from_value(value).unwrap()
    }

    /// Ends the browser session (the driver stops when this is dropped).
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }

    /// With `TRUMPET_SCREENSHOTS=DIR` set, saves the page as it shows now to `DIR/{name}.png`
    /// (how the README's screenshots are made: `TRUMPET_SCREENSHOTS=docs/console cargo test
    /// --test it console`).
    pub async fn keep_screenshot(&self, name: &str) {
        let Some(dir) = std::env::var_os("TRUMPET_SCREENSHOTS") else {
            return;
        };
        let png = self.client.screenshot().await.unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(PathBuf::from(dir).join(format!("{name}.png")), png).unwrap();
    }
}
