//! `healthcore healthcheck`: the container health check.

use crate::config::Config;

/// One GET to this instance's own listener: `/health/live`, or `/metrics` with `--metrics`. Without
/// `--metrics`, a process that serves no API (`relay`, `consume`) is probed on its metrics address
/// when the API address refuses, so the image's one HEALTHCHECK fits every role.
pub async fn run(config: &Config, metrics: bool) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(3)).build()?;
    let metrics_addr = || config.metrics_addr.ok_or_else(|| anyhow::anyhow!("--metrics needs HEALTHCORE_METRICS_ADDR"));
    if metrics {
        return probe(&client, metrics_addr()?, "/metrics", config).await;
    }
    match probe(&client, config.bind, "/health/live", config).await {
        Err(refused) if config.metrics_addr.is_some() => {
            probe(&client, metrics_addr()?, "/metrics", config).await.map_err(|_| refused)
        }
        result => result,
    }
}

async fn probe(
    client: &reqwest::Client,
    mut addr: std::net::SocketAddr,
    path: &str,
    config: &Config,
) -> anyhow::Result<()> {
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let url = format!("http://{addr}{path}");
    let mut request = client.get(&url);
    if let (Some(token), "/metrics") = (&config.metrics_token, path) {
        request = request.bearer_auth(token.expose());
    }
    let status = request.send().await.map_err(|err| anyhow::anyhow!("{url}: {err}"))?.status();
    anyhow::ensure!(status.is_success(), "{url} answered {status}");
    Ok(())
}
