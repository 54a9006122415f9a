//! Where this process stands in a cluster: the address list and its own index, from flags,
//! from the Kubernetes environment of Bytewax's Helm chart, or neither (one process).

use std::path::Path;

/// Splits `-a "host:port;host:port"` into addresses, checking that each has a port.
pub fn parse_addresses(text: &str) -> Result<Vec<String>, String> {
    let addresses: Vec<String> = text
        .split(';')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect();
    if addresses.is_empty() {
        return Err("no addresses given; write them as \"host:port;host:port\"".to_string());
    }
    for address in &addresses {
        check_address(address)?;
    }
    Ok(addresses)
}

fn check_address(address: &str) -> Result<(), String> {
    let port = address
        .rsplit_once(':')
        .map(|(host, port)| (host.is_empty(), port.parse::<u16>()));
    match port {
        Some((false, Ok(_))) => Ok(()),
        _ => Err(format!("address '{address}' is not host:port")),
    }
}

/// The process id of a StatefulSet pod: the ordinal after `{statefulset}-` in its name.
pub fn pod_ordinal(pod_name: &str, statefulset_name: &str) -> Result<usize, String> {
    pod_name
        .strip_prefix(statefulset_name)
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|ordinal| ordinal.parse().ok())
        .ok_or_else(|| {
            format!(
                "pod name '{pod_name}' is not '{statefulset_name}-<ordinal>' \
                 (BYTEWAX_POD_NAME must belong to the StatefulSet BYTEWAX_STATEFULSET_NAME)"
            )
        })
}

/// Reads a host file: one `host:port` per line, blank lines ignored.
pub fn read_hostfile(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the host file '{}': {e}", path.display()))?;
    let addresses: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if addresses.is_empty() {
        return Err(format!("the host file '{}' lists no addresses", path.display()));
    }
    for (line, address) in addresses.iter().enumerate() {
        check_address(address)
            .map_err(|e| format!("{} (host file '{}', entry {})", e, path.display(), line + 1))?;
    }
    Ok(addresses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_split_on_semicolons() {
        assert_eq!(
            parse_addresses("localhost:2101; 10.0.0.2:2101;").unwrap(),
            vec!["localhost:2101".to_string(), "10.0.0.2:2101".to_string()]
        );
        assert!(parse_addresses("").unwrap_err().contains("no addresses"));
        assert!(
            parse_addresses("a:1;b")
                .unwrap_err()
                .contains("'b' is not host:port")
        );
        assert!(parse_addresses(":80").is_err());
        assert!(parse_addresses("h:99999").is_err());
    }

    #[test]
    fn pod_ordinals() {
        assert_eq!(pod_ordinal("flow-0", "flow"), Ok(0));
        assert_eq!(pod_ordinal("my-flow-12", "my-flow"), Ok(12));
        assert!(pod_ordinal("other-1", "flow").unwrap_err().contains("'other-1'"));
        assert!(pod_ordinal("flow-x", "flow").is_err());
        assert!(pod_ordinal("flow1", "flow").is_err());
        assert!(pod_ordinal("flow-", "flow").is_err());
    }

    #[test]
    fn hostfiles() {
        let dir = std::env::temp_dir().join(format!("bwx-hostfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("hosts");
        std::fs::write(&path, "flow-0.flow:9999\n\n  flow-1.flow:9999  \n").unwrap();
        assert_eq!(
            read_hostfile(&path).unwrap(),
            vec!["flow-0.flow:9999", "flow-1.flow:9999"]
        );
        std::fs::write(&path, "flow-0.flow\n").unwrap();
        assert!(read_hostfile(&path).unwrap_err().contains("entry 1"));
        std::fs::write(&path, "\n").unwrap();
        assert!(read_hostfile(&path).unwrap_err().contains("lists no addresses"));
        assert!(
            read_hostfile(&dir.join("missing"))
                .unwrap_err()
                .contains("cannot read")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
