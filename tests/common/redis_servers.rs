//! Redis servers a test owns: one to kill, stop and restart, or three
//! forming a Redis Cluster.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A `redis-server` owned by one test, on a port and data directory of its
/// own, so the test can kill, stop and restart it. Dropping it (also when the
/// test panics) kills the process.
pub struct PrivateRedis {
    pub port: u16,
    dir: tempfile::TempDir,
    options: Vec<String>,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Keeps an append-only file synced on every write, so a restart brings
    /// back everything stored.
    pub async fn start() -> PrivateRedis {
        Self::start_with(&["--appendonly", "yes", "--appendfsync", "always"]).await
    }

    /// Starts with these `redis-server` options besides port, bind and dir.
    pub async fn start_with(options: &[&str]) -> PrivateRedis {
        let mut redis = PrivateRedis {
            port: free_port(),
            dir: tempfile::tempdir().expect("temp dir"),
            options: options.iter().map(|option| option.to_string()).collect(),
            child: None,
        };
        redis.spawn().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts `redis-server` (again) on the same port and directory and waits
    /// until it answers PING.
    pub async fn spawn(&mut self) {
        assert!(self.child.is_none(), "redis-server is already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(&self.options)
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        self.wait_until_it_answers().await;
    }

    async fn wait_until_it_answers(&mut self) {
        let client = redis::Client::open(self.url()).expect("redis url");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let child = self.child.as_mut().expect("redis-server started");
            if let Some(status) = child.try_wait().expect("redis-server status") {
                panic!("redis-server on port {} exited: {status}", self.port);
            }
            let ping = async {
                let mut conn = client.get_multiplexed_async_connection().await?;
                redis::cmd("PING").query_async::<String>(&mut conn).await
            };
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(500), ping).await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} does not answer",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL, as in a crash: no chance to close connections or save.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill redis-server");
            child.wait().expect("reap redis-server");
        }
    }

    /// SIGSTOP: the process hangs with its connections open.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// SIGCONT after [`PrivateRedis::pause`].
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("redis-server running").id();
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {pid}");
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        // SIGKILL also ends a stopped process.
        self.kill();
    }
}

/// A port nothing listens on now (the OS picks it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A Redis Cluster of three primaries (no replicas) on loopback, formed with
/// `redis-cli --cluster create`; dropping it kills the nodes.
pub struct RedisCluster {
    pub nodes: Vec<PrivateRedis>,
}

impl RedisCluster {
    pub async fn start() -> RedisCluster {
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let bus_port = free_port().to_string();
            nodes.push(
                PrivateRedis::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus_port,
                    "--cluster-node-timeout",
                    "5000",
                    "--appendonly",
                    "no",
                ])
                .await,
            );
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            created.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&created.stdout),
            String::from_utf8_lossy(&created.stderr)
        );
        let cluster = RedisCluster { nodes };
        cluster.wait_until_every_node_agrees().await;
        cluster
    }

    /// The URL Tessera is configured with.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }

    /// `cluster_state:ok` on every node, so no request meets a half-formed cluster.
    async fn wait_until_every_node_agrees(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in &self.nodes {
            let client = redis::Client::open(node.url()).expect("redis url");
            loop {
                let info = async {
                    let mut conn = client.get_multiplexed_async_connection().await?;
                    redis::cmd("CLUSTER")
                        .arg("INFO")
                        .query_async::<String>(&mut conn)
                        .await
                };
                if let Ok(info) = info.await
                    && info.contains("cluster_state:ok")
                {
                    break;
                }
                assert!(Instant::now() < deadline, "the cluster did not form");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// Every key under `prefix`, node by node.
    pub async fn keys_per_node(&self, prefix: &str) -> Vec<Vec<String>> {
        let mut per_node = Vec::new();
        for node in &self.nodes {
            let client = redis::Client::open(node.url()).expect("redis url");
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .expect("connect to a cluster node");
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}*"))
                .query_async(&mut conn)
                .await
                .expect("KEYS");
            per_node.push(keys);
        }
        per_node
    }
}
