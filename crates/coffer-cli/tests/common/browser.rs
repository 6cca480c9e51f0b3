//! A real browser for the console's tests: Debian's `chromium`, headless,
//! driven through `chromedriver` (both installed by scripts/services.sh)
//! over WebDriver with fantoccini. A failed test leaves a screenshot and the
//! page's HTML under `target/console-screenshots/`.

use std::future::Future;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use serde_json::{Value, json};

/// Where chromedriver is, or `None` (the test is skipped outside CI).
pub fn chromedriver() -> Option<PathBuf> {
    let found = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromedriver is missing: scripts/services.sh install puts chromium and chromium-driver in place"
        );
        eprintln!("skipped: no chromedriver (scripts/services.sh install adds it)");
    }
    found
}

/// A running chromedriver and one browser session.
pub struct Browser {
    pub client: Client,
    driver: Child,
    /// The console's address.
    pub base: String,
}

impl Drop for Browser {
    /// Ends chromedriver and every chromium it started: killing the driver
    /// alone left the browsers running (and using CPU) after the suite.
    fn drop(&mut self) {
        let pid = rustix::process::Pid::from_child(&self.driver);
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Browser {
    /// Starts chromedriver and a headless chromium `width` pixels wide.
    pub async fn start(driver: &PathBuf, base: &str, width: u32) -> Self {
        let port = free_port();
        // A process group of its own, so the browsers go with the driver.
        let child = Command::new(driver)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let mut options = json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-extensions",
                format!("--window-size={},900", width.max(500)),
            ],
        });
        // Headless windows are at least 500 px wide: a phone's width is emulated.
        if width < 500 {
            options["mobileEmulation"] =
                json!({ "deviceMetrics": { "width": width, "height": 844, "pixelRatio": 1 } });
        }
        let caps = json!({ "browserName": "chrome", "goog:chromeOptions": options });
        let caps = match caps {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("no WebDriver session from chromedriver: {e}"),
            }
        };
        Self {
            client,
            driver: child,
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// Runs `steps`; on failure saves a screenshot and the page, then fails.
    pub async fn run<'a, F, Fut>(&'a self, name: &str, steps: F)
    where
        F: FnOnce(&'a Browser) -> Fut,
        Fut: Future<Output = ()> + 'a,
    {
        let outcome = std::panic::AssertUnwindSafe(steps(self))
            .catch_unwind()
            .await;
        if let Err(panic) = outcome {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .join("..")
                .join("console-screenshots");
            let _ = std::fs::create_dir_all(&dir);
            if let Ok(png) = self.client.screenshot().await {
                let _ = std::fs::write(dir.join(format!("{name}.png")), png);
            }
            if let Ok(html) = self.client.source().await {
                let _ = std::fs::write(dir.join(format!("{name}.html")), html);
            }
            eprintln!("screenshot and page saved in {}", dir.display());
            std::panic::resume_unwind(panic);
        }
    }

    /// Opens a console page.
    pub async fn open(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .expect("open page");
    }

    /// The element `css` selects.
    pub async fn find(&self, css: &str) -> Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    /// Whether an element matches `css`.
    pub async fn has(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .map(|v| v.is_empty())
            .unwrap_or(true)
    }

    /// Types `text` into the field `css` (cleared first).
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        e.clear().await.expect("clear field");
        e.send_keys(text).await.expect("type into field");
    }

    /// Clicks `css`.
    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.expect("click");
    }

    /// The text of the page's `<main>` ("" while a page is loading: a form
    /// just sent may not have its answer yet).
    pub async fn main_text(&self) -> String {
        match self.client.find(Locator::Css("main")).await {
            Ok(main) => main.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// The path of the current page.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("current url");
        url.path().to_owned()
    }

    /// Waits until the page's main text contains `what` (pages poll and reload themselves).
    pub async fn wait_for_text(&self, what: &str, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let text = self.main_text().await;
            if text.contains(what) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{what:?} never appeared; the page says:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Runs a script and returns its value.
    pub async fn eval(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .expect("run a script")
    }

    /// The session cookie (HttpOnly: scripts cannot read it, WebDriver can).
    pub async fn session_cookie(&self) -> String {
        let c = self
            .client
            .get_named_cookie("coffer_session")
            .await
            .expect("the session cookie");
        format!("coffer_session={}", c.value())
    }

    /// Signs in through the form.
    pub async fn sign_in(&self, name: &str, password: &str) {
        self.open("/login").await;
        self.fill("#name", name).await;
        self.fill("#password", password).await;
        self.click("form button[type=submit]").await;
        let text = self.wait_for_text("Overview", 20).await;
        assert!(!text.contains("wrong user name"), "{text}");
    }
}
