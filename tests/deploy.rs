//! The Kubernetes manifests of `deploy/kubernetes`: they parse, and they keep the contract
//! between the StatefulSet, its headless Service and the flow binary's command line (Bytewax's
//! Helm-chart environment). The init container's host-file script runs here, and the host
//! file and pod names it makes are read by the CLI's own functions. No cluster runs.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

fn load(name: &str) -> Yaml {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/kubernetes")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(docs.len(), 1, "{name} holds one object");
    docs.remove(0)
}

fn at<'a>(yaml: &'a Yaml, path: &str) -> &'a Yaml {
    path.split('.').fold(yaml, |y, key| match key.parse::<usize>() {
        Ok(i) => &y[i],
        Err(_) => &y[key],
    })
}

fn text<'a>(yaml: &'a Yaml, path: &str) -> &'a str {
    at(yaml, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string: {:?}", at(yaml, path)))
}

fn list<'a>(yaml: &'a Yaml, path: &str) -> &'a [Yaml] {
    at(yaml, path)
        .as_vec()
        .unwrap_or_else(|| panic!("{path} is not a list"))
        .as_slice()
}

/// A container's environment: literal values, and `fieldRef:<path>` / `configMap:<name>/<key>`.
fn env(container: &Yaml) -> BTreeMap<String, String> {
    list(container, "env")
        .iter()
        .map(|var| {
            let name = text(var, "name").to_string();
            let value = match var["value"].as_str() {
                Some(value) => value.to_string(),
                None if !var["valueFrom"]["configMapKeyRef"].is_badvalue() => format!(
                    "configMap:{}/{}",
                    text(var, "valueFrom.configMapKeyRef.name"),
                    text(var, "valueFrom.configMapKeyRef.key")
                ),
                None => format!("fieldRef:{}", text(var, "valueFrom.fieldRef.fieldPath")),
            };
            (name, value)
        })
        .collect()
}

fn named<'a>(items: &'a [Yaml], name: &str) -> &'a Yaml {
    items
        .iter()
        .find(|i| i["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no item named {name}"))
}

fn mount_path<'a>(container: &'a Yaml, volume: &str) -> &'a str {
    text(named(list(container, "volumeMounts"), volume), "mountPath")
}

#[test]
fn the_statefulset_service_and_cli_agree() {
    let service = load("service.yaml");
    let set = load("statefulset.yaml");
    assert_eq!(text(&service, "kind"), "Service");
    assert_eq!(text(&set, "kind"), "StatefulSet");

    // A headless Service that publishes pods before they are ready (they are ready only
    // once all are connected), selecting the StatefulSet's pods.
    let name = text(&set, "metadata.name");
    assert_eq!(text(&service, "metadata.name"), name);
    assert_eq!(text(&set, "spec.serviceName"), name);
    assert_eq!(text(&service, "spec.clusterIP"), "None");
    assert_eq!(
        at(&service, "spec.publishNotReadyAddresses").as_bool(),
        Some(true)
    );
    let labels = at(&set, "spec.template.metadata.labels");
    for (key, value) in at(&service, "spec.selector").as_hash().unwrap() {
        assert_eq!(
            &labels[key.as_str().unwrap()],
            value,
            "the Service selects the pods"
        );
    }
    assert_eq!(text(&set, "spec.podManagementPolicy"), "Parallel");
    let replicas = at(&set, "spec.replicas").as_i64().unwrap();

    let spec = at(&set, "spec.template.spec");
    let main = named(list(spec, "containers"), "process");
    let vars = env(main);
    // The Helm chart's contract.
    assert_eq!(vars["BYTEWAX_POD_NAME"], "fieldRef:metadata.name");
    assert_eq!(vars["BYTEWAX_STATEFULSET_NAME"], name);
    assert_eq!(vars["BYTEWAX_REPLICAS"], replicas.to_string());
    assert_eq!(vars["BYTEWAX_DATAFLOW_API_ENABLED"], "true");
    for var in [
        "BYTEWAX_WORKERS_PER_PROCESS",
        "BYTEWAX_SNAPSHOT_INTERVAL",
        "BYTEWAX_RECOVERY_BACKUP_INTERVAL",
    ] {
        assert!(vars.contains_key(var), "{var} is set");
    }
    // The recovery directory is the pod's own volume.
    let recovery = &vars["BYTEWAX_RECOVERY_DIRECTORY"];
    assert_eq!(mount_path(main, "recovery"), recovery);
    let claims = list(&set, "spec.volumeClaimTemplates");
    assert_eq!(text(&claims[0], "metadata.name"), "recovery");
    // The cluster secret comes from a mounted Secret; the process listens on all interfaces.
    let secret_dir = mount_path(main, "cluster-secret");
    assert!(
        vars["BWX_CLUSTER_SECRET_FILE"].starts_with(secret_dir),
        "{vars:?}"
    );
    assert!(
        text(
            named(list(spec, "volumes"), "cluster-secret"),
            "secret.secretName"
        )
        .ends_with("cluster-secret")
    );
    assert_eq!(vars["BWX_BIND_ADDRESS"], "0.0.0.0");
    for var in [
        "BWX_HEARTBEAT_TIMEOUT",
        "BWX_STARTUP_TIMEOUT",
        "BYTEWAX_SNAPSHOT_INTERVAL",
    ] {
        bwx::cli::parse_duration(&vars[var]).unwrap_or_else(|e| panic!("{var}: {e}"));
    }

    // The dataflow API port: a container port, the Service's, Prometheus's, the readiness probe's.
    let ports = list(main, "ports");
    let port_of = |name: &str| at(named(ports, name), "containerPort").as_i64().unwrap();
    assert_eq!(port_of("api"), 3030);
    assert_eq!(vars["BYTEWAX_DATAFLOW_API_PORT"], "3030");
    let annotations = at(&set, "spec.template.metadata.annotations");
    assert_eq!(annotations["prometheus.io/scrape"].as_str(), Some("true"));
    assert_eq!(annotations["prometheus.io/port"].as_str(), Some("3030"));
    assert_eq!(text(main, "readinessProbe.httpGet.path"), "/status");
    assert_eq!(text(main, "readinessProbe.httpGet.port"), "api");
    let service_ports = list(&service, "spec.ports");
    for port in ["api", "process"] {
        assert_eq!(text(named(service_ports, port), "targetPort"), port);
        assert_eq!(
            at(named(service_ports, port), "port").as_i64().unwrap(),
            port_of(port)
        );
    }

    // The init container writes the host file where the process reads it; run its script.
    let init = named(list(spec, "initContainers"), "hostfile");
    let init_vars = env(init);
    let hostfile = &vars["BYTEWAX_HOSTFILE_PATH"];
    assert_eq!(&init_vars["BYTEWAX_HOSTFILE_PATH"], hostfile);
    assert_eq!(mount_path(init, "hostfile"), mount_path(main, "hostfile"));
    assert!(hostfile.starts_with(mount_path(main, "hostfile")));
    assert_eq!(init_vars["BYTEWAX_REPLICAS"], vars["BYTEWAX_REPLICAS"]);
    assert_eq!(init_vars["BYTEWAX_STATEFULSET_NAME"], name);
    let script = list(init, "command")
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect::<Vec<_>>();
    assert_eq!(&script[..2], ["sh", "-c"]);
    let tmp = tempfile::tempdir().unwrap();
    let written = tmp.path().join("hostfile.txt");
    let ran = Command::new("sh")
        .args(["-c", script[2]])
        .env("BYTEWAX_HOSTFILE_PATH", &written)
        .env("BYTEWAX_REPLICAS", &init_vars["BYTEWAX_REPLICAS"])
        .env("BYTEWAX_STATEFULSET_NAME", name)
        .env("POD_NAMESPACE", "prod")
        .output()
        .unwrap();
    assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
    let addresses = bwx::cli::read_hostfile(&written).unwrap();
    let process_port = port_of("process");
    let want: Vec<String> = (0..replicas)
        .map(|i| format!("{name}-{i}.{name}.prod.svc.cluster.local:{process_port}"))
        .collect();
    assert_eq!(addresses, want);
    // Each pod's name gives its process id, the index of its own address.
    for i in 0..replicas as usize {
        assert_eq!(bwx::cli::pod_ordinal(&format!("{name}-{i}"), name), Ok(i));
    }
}

/// The recovery init container's script, run for every pod (with the `bwx` tool in place of
/// the flow binary: both take the same `recovery init` flags) into a directory of its own:
/// together the pods hold every partition once, of one store, as the processes' plan
/// checks; a second start changes nothing.
#[test]
fn the_recovery_init_container_gives_each_pod_its_share_of_one_store() {
    let set = load("statefulset.yaml");
    let spec = at(&set, "spec.template.spec");
    let main = named(list(spec, "containers"), "process");
    let init = named(list(spec, "initContainers"), "recovery-init");
    let vars = env(main);
    let init_vars = env(init);
    let directory = &vars["BYTEWAX_RECOVERY_DIRECTORY"];
    assert_eq!(&init_vars["BYTEWAX_RECOVERY_DIRECTORY"], directory);
    assert_eq!(mount_path(init, "recovery"), directory);
    assert_eq!(text(init, "image"), text(main, "image"));
    assert_eq!(init_vars["BYTEWAX_POD_NAME"], "fieldRef:metadata.name");
    let replicas = at(&set, "spec.replicas").as_i64().unwrap() as usize;
    assert_eq!(init_vars["BYTEWAX_REPLICAS"], replicas.to_string());
    assert_eq!(
        init_vars["BWX_RECOVERY_STORE_ID"],
        "configMap:flow-recovery/store-id"
    );
    let partitions: usize = init_vars["BWX_RECOVERY_PARTITIONS"].parse().unwrap();
    let workers: usize = vars["BYTEWAX_WORKERS_PER_PROCESS"].parse().unwrap();
    assert!(partitions >= replicas * workers, "fewer partitions than workers");
    let command = list(init, "command")
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect::<Vec<_>>();
    assert_eq!(&command[..2], ["sh", "-c"]);
    assert!(command[2].contains("/app/flow recovery init"), "{command:?}");
    let script = command[2].replace("/app/flow", env!("CARGO_BIN_EXE_bwx"));

    let tmp = tempfile::tempdir().unwrap();
    let pod_dir = |i: usize| tmp.path().join(format!("recovery-flow-{i}"));
    let run_pods = || {
        for i in 0..replicas {
            std::fs::create_dir_all(pod_dir(i)).unwrap();
            // A fresh ext4 volume holds lost+found.
            std::fs::create_dir_all(pod_dir(i).join("lost+found")).unwrap();
            let ran = Command::new("sh")
                .args(["-c", &script])
                .env("BYTEWAX_POD_NAME", format!("flow-{i}"))
                .env("BYTEWAX_REPLICAS", replicas.to_string())
                .env("BYTEWAX_RECOVERY_DIRECTORY", pod_dir(i))
                .env("BWX_RECOVERY_PARTITIONS", partitions.to_string())
                .env("BWX_RECOVERY_STORE_ID", "0f3c9a7e2b6d41c8")
                .output()
                .unwrap();
            assert!(
                ran.status.success(),
                "pod {i}: {}",
                String::from_utf8_lossy(&ran.stderr)
            );
        }
    };
    run_pods();
    let made = |i: usize| {
        std::fs::metadata(pod_dir(i).join(format!("part-{i}.sqlite3")))
            .unwrap()
            .modified()
            .unwrap()
    };
    let first: Vec<_> = (0..replicas).map(made).collect();
    run_pods();
    assert_eq!(
        (0..replicas).map(made).collect::<Vec<_>>(),
        first,
        "a second start changed nothing"
    );

    let mut held = Vec::new();
    let mut summaries = Vec::new();
    let mut stores = Vec::new();
    for i in 0..replicas {
        let store =
            bwx::recovery::SqliteRecovery::open_store(pod_dir(i), std::time::Duration::ZERO, "flow").unwrap();
        let files = store.files();
        assert!(!files.is_empty(), "pod {i} holds no partition");
        held.extend(
            files
                .iter()
                .map(|f| f.file_name().unwrap().to_string_lossy().into_owned()),
        );
        assert_eq!(
            bwx::recovery::store_id_of(pod_dir(i)).unwrap(),
            "0f3c9a7e2b6d41c8"
        );
        summaries.push(bwx::recovery::RecoveryStore::local_summary(&store).unwrap());
        stores.push(store);
    }
    held.sort();
    let mut want: Vec<String> = (0..partitions).map(|p| format!("part-{p}.sqlite3")).collect();
    want.sort();
    assert_eq!(held, want, "every partition on exactly one pod");
    // The processes' own check: a complete set of one store, each partition held by its pod.
    let plan = bwx::recovery::RecoveryStore::plan(&stores[0], &summaries).unwrap();
    assert_eq!(
        plan.holders,
        (0..partitions).map(|p| p % replicas).collect::<Vec<_>>()
    );
}
