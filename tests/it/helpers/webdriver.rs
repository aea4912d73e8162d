//! A small W3C WebDriver client over reqwest, enough to drive Debian's chromium through
//! chromedriver: open pages, find and click elements, read text and attributes, answer
//! confirmation dialogs, run a script, take screenshots. Shared with `benches/ui.rs`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    http: reqwest::Client,
    base: String,
    _driver: tokio::process::Child,
}

impl Drop for Browser {
    /// chromedriver leads a process group of its own: killing the group ends the chromium it
    /// started too (killing chromedriver alone left chromium's processes running).
    fn drop(&mut self) {
        if let Some(pid) = self._driver.id() {
            unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
        }
    }
}

fn chromedriver() -> String {
    for candidate in ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"] {
        if std::path::Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    panic!("chromedriver not found: install Debian's chromium and chromium-driver (.ci/run does)");
}

impl Browser {
    /// Starts chromedriver and a headless chromium session.
    pub async fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = tokio::process::Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not answer"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1400,1000"]
            }
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {r}"))
            .to_owned();
        Browser {
            http,
            base: format!("{base}/session/{id}"),
            _driver: driver,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r: Value = req.send().await.unwrap().json().await.unwrap();
        r["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// A Chrome DevTools command (chromedriver's `goog/cdp/execute`).
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.post("/goog/cdp/execute", json!({"cmd": cmd, "params": params}))
            .await
    }

    /// Pages as a system in dark mode (or light) sees them.
    pub async fn dark(&self, on: bool) {
        let value = if on { "dark" } else { "light" };
        self.cdp(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": value}]}),
        )
        .await;
    }

    /// A phone's screen (390 × 844 CSS pixels, touch) or back to the window's own.
    pub async fn phone(&self, on: bool) {
        if on {
            self.cdp(
                "Emulation.setDeviceMetricsOverride",
                json!({"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": true}),
            )
            .await;
        } else {
            self.cdp("Emulation.clearDeviceMetricsOverride", json!({}))
                .await;
        }
    }

    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({"url": url})).await;
    }

    pub async fn url(&self) -> String {
        self.get("/url").await.as_str().unwrap_or("").to_owned()
    }

    /// The first element matching `css`, if any.
    pub async fn find(&self, css: &str) -> Option<String> {
        let v = self
            .post("/element", json!({"using": "css selector", "value": css}))
            .await;
        v[ELEMENT].as_str().map(str::to_owned)
    }

    /// Waits up to `within` for an element matching `css`.
    pub async fn wait_for(&self, css: &str, within: Duration) -> String {
        let started = Instant::now();
        loop {
            if let Some(e) = self.find(css).await {
                return e;
            }
            if started.elapsed() > within {
                let raw = self
                    .post("/element", json!({"using": "css selector", "value": css}))
                    .await;
                let page = self
                    .execute("return document.body ? document.body.innerText.slice(0, 400) : '';")
                    .await;
                panic!(
                    "no element {css} within {within:?} on {}: {raw}; the page says {page}",
                    self.url().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn click(&self, element: &str) {
        self.post(&format!("/element/{element}/click"), json!({}))
            .await;
    }

    /// Types `text` into a form field.
    pub async fn type_into(&self, element: &str, text: &str) {
        self.post(&format!("/element/{element}/value"), json!({"text": text}))
            .await;
    }

    /// Presses `keys` on the keyboard (WebDriver key actions, to whatever has the focus):
    /// `"\u{E004}"` is Tab, `"\u{E007}"` Enter, `" "` Space; `shift` holds Shift meanwhile.
    pub async fn press(&self, keys: &str, shift: bool) {
        let mut actions = Vec::new();
        if shift {
            actions.push(json!({"type": "keyDown", "value": "\u{E008}"}));
        }
        for c in keys.chars() {
            actions.push(json!({"type": "keyDown", "value": c.to_string()}));
            actions.push(json!({"type": "keyUp", "value": c.to_string()}));
        }
        if shift {
            actions.push(json!({"type": "keyUp", "value": "\u{E008}"}));
        }
        self.post(
            "/actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]}),
        )
        .await;
    }

    /// Presses Tab (Shift-Tab with `back`) until `script` is true of the focused element
    /// (`document.activeElement`), at most `limit` times.
    pub async fn tab_to(&self, script: &str, back: bool, limit: usize) {
        for _ in 0..limit {
            if self.execute(script).await == Value::Bool(true) {
                return;
            }
            self.press("\u{E004}", back).await;
        }
        assert_eq!(
            self.execute(script).await,
            Value::Bool(true),
            "the keyboard never reached it: {script}"
        );
    }

    /// The cookies the browser holds for the current page, as WebDriver describes them
    /// (`name`, `value`, `httpOnly`, `sameSite`, `secure`, `expiry`).
    pub async fn cookies(&self) -> Vec<Value> {
        self.get("/cookie")
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub async fn text(&self, element: &str) -> String {
        self.get(&format!("/element/{element}/text"))
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    pub async fn attribute(&self, element: &str, name: &str) -> Option<String> {
        self.get(&format!("/element/{element}/attribute/{name}"))
            .await
            .as_str()
            .map(str::to_owned)
    }

    /// The rendered text of the first element matching `css`, found and read in one step (a
    /// page's live refresh may replace an element between a find and a read).
    pub async fn text_of(&self, css: &str) -> Option<String> {
        let css = serde_json::to_string(css).unwrap();
        self.execute(&format!(
            "const e = document.querySelector({css}); return e ? e.innerText : null;"
        ))
        .await
        .as_str()
        .map(str::to_owned)
    }

    /// An attribute of the first element matching `css`, found and read in one step.
    pub async fn attribute_of(&self, css: &str, name: &str) -> Option<String> {
        let (css, name) = (
            serde_json::to_string(css).unwrap(),
            serde_json::to_string(name).unwrap(),
        );
        self.execute(&format!(
            "const e = document.querySelector({css}); return e ? e.getAttribute({name}) : null;"
        ))
        .await
        .as_str()
        .map(str::to_owned)
    }

    /// Runs `script` in the page and returns its result.
    pub async fn execute(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": []}))
            .await
    }

    /// Waits until `script` returns `true`.
    pub async fn wait_until(&self, script: &str, within: Duration, what: &str) {
        let started = Instant::now();
        while self.execute(script).await != Value::Bool(true) {
            assert!(started.elapsed() < within, "{what}: not within {within:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The text of the confirmation dialog on screen; accepts it.
    pub async fn accept_dialog(&self) -> String {
        let started = Instant::now();
        loop {
            let text = self.get("/alert/text").await;
            if let Some(t) = text.as_str() {
                self.post("/alert/accept", json!({})).await;
                return t.to_owned();
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "no confirmation dialog appeared"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Saves a PNG of the window under `target/ui-screenshots/NAME.png`.
    pub async fn screenshot(&self, name: &str) {
        use base64::Engine;
        let b64 = self.get("/screenshot").await;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(format!("{name}.png")),
            base64::engine::general_purpose::STANDARD
                .decode(b64.as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
    }
}
