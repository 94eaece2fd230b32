//! Headless Chromium from Debian, driven through WebDriver (`chromedriver`, package
//! `chromium-driver`, which `scripts/test.sh` installs), for the web UI's tests.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// How a browser shows pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Light,
    Dark,
}

/// A running chromedriver and a browser session in it; both end when dropped.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start(scheme: Scheme) -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "chromedriver runs (Debian package chromium-driver; scripts/test.sh installs it)",
            );
        let profile = tempfile::tempdir().expect("a browser profile directory");
        // The flags keep Chromium off the network it would otherwise call home to.
        let mut args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--window-size=1280,900".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        if scheme == Scheme::Dark {
            args.push("--force-dark-mode".into());
            args.push("--blink-settings=preferredColorScheme=0".into());
        }
        let capabilities =
            json!({"goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}});
        let capabilities = capabilities.as_object().expect("an object").clone();
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            let connected = ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await;
            match connected {
                Ok(client) => break client,
                Err(e) if Instant::now() > deadline => {
                    panic!("chromedriver did not start a browser: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        Browser { client, driver, _profile: profile }
    }

    /// Resizes the window to `width` × `height` CSS pixels.
    pub async fn resize(&self, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.expect("resize the window");
    }

    /// Clicks what `locator` finds and waits until the page it leads to, titled
    /// `title`, has loaded: a click returns before the navigation it starts may have,
    /// and an element found before then belongs to the page being left.
    pub async fn click_to(&self, locator: Locator<'_>, title: &str) {
        self.client.find(locator).await.expect("what to click").click().await.expect("click");
        self.wait_for_title(title).await;
    }

    /// How many pixels the page is wider than the window: a phone would scroll sideways.
    pub async fn horizontal_overflow(&self) -> i64 {
        let script = "const page = document.documentElement; \
                      return page.scrollWidth - page.clientWidth;";
        let overflow = self.client.execute(script, vec![]).await.expect("measure the page");
        overflow.as_i64().expect("a number of pixels")
    }

    /// Waits until the page's title is `title`.
    pub async fn wait_for_title(&self, title: &str) {
        let xpath = format!("/html/head/title[normalize-space()=\"{title}\"]");
        loop {
            match self.client.wait().for_element(Locator::XPath(&xpath)).await {
                Ok(_) => return,
                // Chromium answers a find that a navigation overtook with this instead of
                // a W3C error; the new page is then looked at.
                Err(e) if e.to_string().contains("aborted by navigation") => continue,
                Err(e) => panic!("the page {title:?}: {e}"),
            }
        }
    }

    /// The serious and critical accessibility violations axe-core finds on the page, as
    /// `rule: element, element…` lines.
    pub async fn accessibility_violations(&self) -> Vec<String> {
        let axe = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/web-tools/node_modules/axe-core/axe.min.js");
        let source = std::fs::read_to_string(&axe).unwrap_or_else(|e| {
            panic!("axe-core at {}: {e}; scripts/test.sh installs it", axe.display())
        });
        self.client.execute(&source, vec![]).await.expect("inject axe-core");
        let run = "const done = arguments[arguments.length - 1];
            axe.run(document, { resultTypes: ['violations'] }).then((result) => done(
                result.violations
                    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
                    .map((v) => v.id + ': ' + v.nodes.map((n) => n.target.join(' ')).join(', '))));";
        let found = self.client.execute_async(run, vec![]).await.expect("run axe-core");
        serde_json::from_value(found).expect("a list of violations")
    }

    /// Saves a screenshot of the page as `docs/screenshots/<name>.png` in the repository.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
        std::fs::create_dir_all(&dir).expect("create docs/screenshots");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write the screenshot");
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A port nothing listens on now (the driver takes it a moment later).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}
