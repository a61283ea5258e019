//! The one conversion between the sidecar API's messages ([`crate::proto::v1`])
//! and the domain types of [`crate::launch`], both ways, and between error
//! kinds and gRPC status codes. The server ([`crate::api`]) and the remote
//! client ([`crate::client`]) both use it, so the two ends cannot drift.

use tonic::{Code, Status};

use crate::launch::{
    Built, Chaincode, Collected, Error, Kind, Line, LogQuery, Selection, StartRequest, Started,
    Stream, TlsMaterial,
};
use crate::platform::Platform;
use crate::proto::v1 as pb;

/// The status code of an error kind.
pub fn code(kind: Kind) -> Code {
    match kind {
        Kind::InvalidArgument => Code::InvalidArgument,
        Kind::NotFound => Code::NotFound,
        Kind::FailedPrecondition => Code::FailedPrecondition,
        Kind::PermissionDenied => Code::PermissionDenied,
        Kind::Aborted => Code::Aborted,
        Kind::Cancelled => Code::Cancelled,
        Kind::DeadlineExceeded => Code::DeadlineExceeded,
        Kind::ResourceExhausted => Code::ResourceExhausted,
        Kind::Unavailable => Code::Unavailable,
        Kind::Internal => Code::Internal,
    }
}

/// The error kind of a status code (codes cclaunch never sends are internal).
pub fn kind(code: Code) -> Kind {
    match code {
        Code::InvalidArgument | Code::OutOfRange => Kind::InvalidArgument,
        Code::NotFound => Kind::NotFound,
        Code::FailedPrecondition | Code::AlreadyExists => Kind::FailedPrecondition,
        Code::PermissionDenied | Code::Unauthenticated => Kind::PermissionDenied,
        Code::Aborted => Kind::Aborted,
        Code::Cancelled => Kind::Cancelled,
        Code::DeadlineExceeded => Kind::DeadlineExceeded,
        Code::ResourceExhausted => Kind::ResourceExhausted,
        Code::Unavailable => Kind::Unavailable,
        Code::Ok | Code::Unknown | Code::Unimplemented | Code::Internal | Code::DataLoss => {
            Kind::Internal
        }
    }
}

/// An error as the sidecar answers it: its kind's code, its whole chain.
pub fn status(error: &Error) -> Status {
    Status::new(code(error.kind()), crate::error_chain(error))
}

pub fn start_request(request: StartRequest) -> pb::StartRequest {
    let tls = request.tls.unwrap_or(TlsMaterial {
        client_cert: Vec::new(),
        client_key: Vec::new(),
        root_cert: Vec::new(),
    });
    pb::StartRequest {
        package_id: request.package_id,
        peer_address: request.peer_address,
        client_cert: tls.client_cert,
        client_key: tls.client_key,
        root_cert: tls.root_cert,
        msp_id: request.msp_id.unwrap_or_default(),
        extra_env: request.extra_env,
        image_of: request.image_of.unwrap_or_default(),
    }
}

/// A Start request as the launcher takes it; what no launcher call checks
/// (TLS all or none, a peer address given) is refused here.
pub fn from_start_request(r: pb::StartRequest) -> Result<StartRequest, Status> {
    let tls = TlsMaterial::from_parts(r.client_cert, r.client_key, r.root_cert)
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    if r.peer_address.is_empty() {
        return Err(Status::invalid_argument("peer_address is required"));
    }
    Ok(StartRequest {
        package_id: r.package_id,
        platform: None,
        peer_address: r.peer_address,
        tls,
        msp_id: (!r.msp_id.is_empty()).then_some(r.msp_id),
        extra_env: r.extra_env,
        image_of: (!r.image_of.is_empty()).then_some(r.image_of),
    })
}

/// What the sidecar answered that this cclaunch cannot read.
#[derive(Debug, thiserror::Error)]
#[error("the sidecar answered chaincode type {0:?}, which this cclaunch does not know")]
pub struct UnknownType(String);

fn platform(kind: &str) -> Result<Platform, UnknownType> {
    Platform::from_type(kind).map_err(|_| UnknownType(kind.to_string()))
}

pub fn started(started: Started) -> pb::StartResponse {
    pb::StartResponse {
        container: started.container,
        r#type: started.platform.to_string(),
    }
}

pub fn from_started(r: pb::StartResponse) -> Result<Started, UnknownType> {
    Ok(Started {
        platform: platform(&r.r#type)?,
        container: r.container,
    })
}

pub fn built(built: Built) -> pb::BuildDone {
    pb::BuildDone {
        package_id: built.package_id,
        image: built.image,
        reused: built.reused,
        r#type: built.platform.to_string(),
    }
}

pub fn from_built(done: pb::BuildDone) -> Result<Built, UnknownType> {
    Ok(Built {
        platform: platform(&done.r#type)?,
        package_id: done.package_id,
        image: done.image,
        reused: done.reused,
    })
}

pub fn chaincode(c: Chaincode) -> pb::Chaincode {
    pb::Chaincode {
        package_id: c.package_id,
        container: c.container,
        state: c.state,
        running: c.running,
        exit_code: c.exit_code,
    }
}

pub fn from_chaincode(c: pb::Chaincode) -> Chaincode {
    Chaincode {
        package_id: c.package_id,
        container: c.container,
        state: c.state,
        running: c.running,
        exit_code: c.exit_code,
    }
}

pub fn gc_request(selection: &Selection) -> pb::GcRequest {
    match selection.clone() {
        Selection::Only(package_ids) => pb::GcRequest {
            package_ids,
            ..Default::default()
        },
        Selection::AllBut(keep) => pb::GcRequest {
            keep,
            ..Default::default()
        },
        Selection::Caches => pb::GcRequest {
            caches: true,
            ..Default::default()
        },
    }
}

pub fn from_gc_request(r: pb::GcRequest) -> Selection {
    if r.caches {
        Selection::Caches
    } else if r.package_ids.is_empty() {
        Selection::AllBut(r.keep)
    } else {
        Selection::Only(r.package_ids)
    }
}

pub fn collected(c: Collected) -> pb::GcResponse {
    pb::GcResponse {
        containers: c.containers,
        images: c.images,
        volumes: c.volumes,
    }
}

pub fn from_collected(r: pb::GcResponse) -> Collected {
    Collected {
        containers: r.containers,
        images: r.images,
        volumes: r.volumes,
    }
}

/// A Logs request; `None` when the query asks for nothing (no old lines and
/// no new ones). The API's tail counts lines with 0 meaning all of them, so
/// "none of the old lines" while following is asked for as "since now".
pub fn logs_request(package_id: &str, query: LogQuery) -> Option<pb::LogsRequest> {
    let (tail, since) = match query.tail {
        None => (0, query.since),
        Some(0) if !query.follow => return None,
        Some(0) => (
            0,
            i64::try_from(crate::output::unix_now().as_secs()).unwrap_or(i64::MAX),
        ),
        Some(n) => (u32::try_from(n).unwrap_or(u32::MAX), query.since),
    };
    Some(pb::LogsRequest {
        package_id: package_id.to_string(),
        follow: query.follow,
        tail,
        since,
    })
}

pub fn from_logs_request(r: &pb::LogsRequest) -> LogQuery {
    LogQuery {
        follow: r.follow,
        tail: (r.tail != 0).then_some(u64::from(r.tail)),
        since: r.since,
    }
}

pub fn line(line: Line) -> pb::LogLine {
    pb::LogLine {
        line: line.text,
        stream: line.stream.name().into(),
    }
}

pub fn from_line(line: pb::LogLine) -> Line {
    Line {
        stream: if line.stream == Stream::Stderr.name() {
            Stream::Stderr
        } else {
            Stream::Stdout
        },
        text: line.line,
    }
}

/// Metadata on the UNAVAILABLE status that ends following calls when the
/// sidecar shuts down: the sidecar is going (a restart, mostly), the
/// chaincode is not, so a follower waits for the next sidecar.
pub const SHUTTING_DOWN: &str = "cclaunch-shutting-down";

pub fn shutting_down() -> Status {
    let mut status = Status::unavailable(
        "the cclaunch sidecar is shutting down; the chaincode keeps running: call again once a sidecar is back",
    );
    status.metadata_mut().insert(
        SHUTTING_DOWN,
        tonic::metadata::MetadataValue::from_static("1"),
    );
    status
}

/// Whether `status` is [`shutting_down`]'s.
pub fn is_shutting_down(status: &Status) -> bool {
    status.code() == Code::Unavailable && status.metadata().contains_key(SHUTTING_DOWN)
}
