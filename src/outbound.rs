//! Outbound HTTP: every client the engine builds (carriers, the sandbox's callbacks, webhooks,
//! the LLM) starts from [`client_builder`], so all of them let go of idle connections alike.
//!
//! reqwest keeps an idle keep-alive connection for 90 s by default, with no cap per host. After
//! a burst of calls the sandbox and carrier clients held about 590 idle connections to the
//! engine, and the engine their server ends: 1,182 sockets with their buffers, about 10 MiB of
//! the 96 MiB an idle server kept after 5,000 calls (BENCHMARKS.md, 18:52 run). Under load a
//! connection is reused long before it has idled for [`IDLE_CONNECTION_TIMEOUT`].
//!
//! They also keep no copy of a request to send again. reqwest's default retry policy clones
//! every request (its headers, URI, body and extensions) before sending it, in case the
//! connection refuses it at the protocol level, which only HTTP/2 does; these clients speak
//! HTTP/1.1, so the copy was never used. Each caller decides itself whether and when to try a
//! request again (the delivery workers' backoff, the carriers' `Retry-After`).

use std::time::Duration;

/// How long an idle pooled connection is kept before it is closed.
pub const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// Returns a client builder that closes pooled connections idle for [`IDLE_CONNECTION_TIMEOUT`]
/// and never resends a request on its own.
pub fn client_builder() -> reqwest::ClientBuilder {
    client_builder_idle_for(IDLE_CONNECTION_TIMEOUT)
}

fn client_builder_idle_for(idle: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder().pool_idle_timeout(idle).retry(reqwest::retry::never().max_retries_per_request(0))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A pooled connection left idle is closed by the client: the server sees it end.
    #[tokio::test]
    async fn an_idle_connection_is_closed() {
        crate::install_crypto_provider();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buffer = vec![0u8; 4096];
            let read = socket.read(&mut buffer).await.unwrap();
            assert!(read > 0);
            socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await.unwrap();
            // Keep-alive: the connection stays open until the client closes it (read gives 0).
            socket.read(&mut buffer).await.unwrap()
        });
        let client = super::client_builder_idle_for(Duration::from_millis(100)).build().unwrap();
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.text().await.unwrap(), "ok");
        let closed = tokio::time::timeout(Duration::from_secs(5), server).await;
        assert_eq!(closed.expect("the idle connection was kept open").unwrap(), 0);
    }
}
