//! The admin commands' HTTP client: one running creditd, one key. Answers come back as
//! the API's own answer types (`creditd_server::dto`); what goes wrong comes back as one
//! plain sentence a person can act on: nothing listening, a key refused, a role too
//! narrow, or the problem the server explained.

use std::time::Duration;

use anyhow::{Context, anyhow};
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::cli::Remote;

/// How long one call may take: an admin command's calls are small, and a server that
/// takes longer is stuck, not busy.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A running creditd, as the admin commands reach it.
pub struct Api {
    http: reqwest::Client,
    base: Url,
    key: Option<String>,
}

/// The fields of a problem answer (RFC 9457) a person needs.
#[derive(serde::Deserialize, Default)]
struct Problem {
    #[serde(default)]
    code: String,
    #[serde(default)]
    detail: String,
}

impl Api {
    /// A client for the server `remote` names.
    pub fn new(remote: &Remote) -> anyhow::Result<Api> {
        let base = Url::parse(&remote.url)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
            .ok_or_else(|| {
                anyhow!(
                    "--url {:?} is not an http:// or https:// address of a creditd server",
                    remote.url
                )
            })?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT)
            .user_agent(concat!("creditd-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("starting the HTTP client")?;
        let key = remote.key.clone().filter(|key| !key.is_empty());
        if key
            .as_deref()
            .is_some_and(|key| !key.bytes().all(|b| b.is_ascii_graphic()))
        {
            anyhow::bail!("the API key holds spaces or characters no creditd key has");
        }
        Ok(Api { http, base, key })
    }

    /// The URL of the path made of `segments`, each percent-encoded as one segment. An
    /// empty segment, `.` or `..` would not stay one segment (a URL reads the dots as
    /// steps through the path), and no id creditd gives is one: refused.
    fn url(&self, segments: &[&str]) -> anyhow::Result<Url> {
        if let Some(odd) = segments.iter().find(|s| matches!(**s, "" | "." | "..")) {
            anyhow::bail!("{odd:?} is no id creditd has");
        }
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        Ok(url)
    }

    fn request(&self, method: Method, segments: &[&str]) -> anyhow::Result<RequestBuilder> {
        let request = self.http.request(method, self.url(segments)?);
        Ok(match &self.key {
            Some(key) => request.bearer_auth(key),
            None => request,
        })
    }

    /// `GET` a path; its answer.
    pub async fn get<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> anyhow::Result<T> {
        let answer = self
            .exchange(self.request(Method::GET, segments)?.query(query))
            .await?;
        self.accept(answer).await
    }

    /// `GET` a path that may name nothing: `None` when the server says `not_found`.
    pub async fn find<T: DeserializeOwned>(&self, segments: &[&str]) -> anyhow::Result<Option<T>> {
        let answer = self.exchange(self.request(Method::GET, segments)?).await?;
        if answer.status() == StatusCode::NOT_FOUND {
            let bytes = answer.bytes().await.context("reading creditd's answer")?;
            let problem: Problem = serde_json::from_slice(&bytes).unwrap_or_default();
            if problem.code == "not_found" {
                return Ok(None);
            }
            anyhow::bail!(
                "creditd at {} does not know this request: is it an older version?",
                self.base
            );
        }
        self.accept(answer).await.map(Some)
    }

    /// `POST` a JSON body; the answer.
    pub async fn post<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        let answer = self
            .exchange(self.request(Method::POST, segments)?.json(body))
            .await?;
        self.accept(answer).await
    }

    /// `POST` a change exactly once under `key` (its Idempotency-Key): the answer, and
    /// whether it replays an earlier one (the change was made before; nothing twice).
    /// Should the answer not arrive, the error says how to retry safely.
    pub async fn post_once<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: &impl Serialize,
        key: &str,
    ) -> anyhow::Result<(T, bool)> {
        let request = self
            .request(Method::POST, segments)?
            .header("idempotency-key", key)
            .json(body);
        let answer = self.exchange(request).await.map_err(|error| {
            anyhow!(
                "{error}. The change may or may not have been made: run the same command \
                 with --idempotency-key {key} to make sure it is made once"
            )
        })?;
        let replayed = answer
            .headers()
            .get("idempotent-replayed")
            .is_some_and(|value| value == "true");
        Ok((self.accept(answer).await?, replayed))
    }

    /// A new Idempotency-Key for one change made from the command line.
    pub fn new_key() -> String {
        format!("cli-{}", hex::encode(rand::random::<[u8; 12]>()))
    }

    /// `POST` a CSV file, streamed, each chunk counted on `sent` as it goes; `timeout`
    /// for the whole exchange (a large file is long work, not a stuck server).
    pub async fn post_csv<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
        file: tokio::fs::File,
        length: u64,
        timeout: Duration,
        sent: impl Fn(u64) + Send + Sync + 'static,
    ) -> anyhow::Result<T> {
        use futures_util::StreamExt;
        let chunks = tokio_util::io::ReaderStream::new(file).inspect(move |chunk| {
            if let Ok(chunk) = chunk {
                sent(chunk.len() as u64);
            }
        });
        let request = self
            .request(Method::POST, segments)?
            .query(query)
            .timeout(timeout)
            .header(reqwest::header::CONTENT_TYPE, "text/csv")
            .header(reqwest::header::CONTENT_LENGTH, length)
            .body(reqwest::Body::wrap_stream(chunks));
        let answer = self.exchange(request).await?;
        self.accept(answer).await
    }

    /// `DELETE` a path.
    pub async fn delete(&self, segments: &[&str]) -> anyhow::Result<()> {
        let answer = self
            .exchange(self.request(Method::DELETE, segments)?)
            .await?;
        self.accept(answer).await
    }

    /// Sends a request; a server that cannot be reached becomes its sentence.
    async fn exchange(&self, request: RequestBuilder) -> anyhow::Result<reqwest::Response> {
        request.send().await.map_err(|error| {
            if error.is_connect() {
                anyhow!(
                    "cannot reach creditd at {}: nothing answers there. Is `creditd serve` \
                     running? (set the address with --url or CREDITD_URL)",
                    self.base
                )
            } else if error.is_timeout() {
                anyhow!("creditd at {} did not answer in time", self.base)
            } else {
                anyhow!("calling creditd at {}: {error}", self.base)
            }
        })
    }

    /// The answer's body if it is a success; else the refusal as a sentence.
    async fn accept<T: DeserializeOwned>(&self, answer: reqwest::Response) -> anyhow::Result<T> {
        let status = answer.status();
        let bytes = answer.bytes().await.context("reading creditd's answer")?;
        if !status.is_success() {
            let problem: Problem = serde_json::from_slice(&bytes).unwrap_or_default();
            return Err(self.refusal(status, problem));
        }
        // 204 carries no body: JSON `null` stands in, for `()`.
        let text: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        serde_json::from_slice(text)
            .with_context(|| format!("creditd's answer ({status}) is not what this CLI expects"))
    }

    fn refusal(&self, status: StatusCode, problem: Problem) -> anyhow::Error {
        match status {
            StatusCode::UNAUTHORIZED if self.key.is_none() => anyhow!(
                "creditd at {} needs an API key: pass --key or set CREDITD_KEY",
                self.base
            ),
            StatusCode::UNAUTHORIZED => anyhow!(
                "creditd at {} refused the key: it is unknown or revoked",
                self.base
            ),
            StatusCode::FORBIDDEN if problem.code == "forbidden" => {
                anyhow!("this key may not do that: {}", problem.detail)
            }
            _ if problem.detail.is_empty() => anyhow!("creditd answered {status}"),
            _ => anyhow!("{} ({})", problem.detail, problem.code),
        }
    }
}
