//! The sidecar's open-file limit. Each mirrored chaincode holds an engine
//! connection (its output stream) for its whole life, so a sidecar with a
//! thousand chaincodes needs over a thousand descriptors, while service
//! managers start processes with a soft limit of 1024. As Go's runtime does
//! for every Go program (the peer among them), the soft limit is raised to
//! the hard one; the hard limit, which the operator sets, stays the bound.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Raises the soft limit on open files to the hard limit; the limit now in
/// force (`None`: unlimited).
pub fn raise() -> std::io::Result<Option<u64>> {
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        return Ok(limit.current);
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    )?;
    Ok(limit.maximum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_reaches_the_hard_one() {
        let before = getrlimit(Resource::Nofile);
        let raised = raise().unwrap();
        let after = getrlimit(Resource::Nofile);
        assert_eq!(raised, before.maximum);
        assert_eq!(after.current, before.maximum);
        assert_eq!(after.maximum, before.maximum);
    }
}
