//! The wire side: which service and operation a request is, and how replies and
//! errors are written in each service's protocol, so unmodified SDK clients parse them.

pub(crate) mod params;
pub(crate) mod xml;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use http_body_util::Full;
use serde_json::{Value, json};

pub(crate) use params::Params;
pub(crate) use xml::XmlWriter;

use crate::faults::FaultError;
use crate::service::{Protocol, Service};

/// An AWS error as a service would answer it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AwsError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl AwsError {
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    /// A client error (400) with the given code.
    pub fn bad_request(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    /// The service's code for an invalid parameter value.
    pub fn invalid_parameter(service: Service, message: impl Into<String>) -> Self {
        let code = match service {
            Service::Sts => "ValidationError",
            Service::Organizations => "InvalidInputException",
            Service::Memorydb => "InvalidParameterValueException",
            Service::Opensearch | Service::Savingsplans | Service::Costexplorer => {
                "ValidationException"
            }
            Service::Ec2 | Service::Rds | Service::Elasticache | Service::Redshift => {
                "InvalidParameterValue"
            }
        };
        Self::bad_request(code, message)
    }

    /// The service's code for a missing required parameter.
    pub fn missing_parameter(service: Service, name: &str) -> Self {
        let message = format!("the request must contain the parameter {name}");
        match service {
            Service::Ec2 | Service::Rds | Service::Elasticache | Service::Redshift => {
                Self::bad_request("MissingParameter", message)
            }
            _ => Self::invalid_parameter(service, message),
        }
    }

    /// The error an injected fault answers with, in the service's own code.
    pub fn from_fault(service: Service, fault: FaultError) -> Self {
        match fault {
            FaultError::Throttle => {
                let (status, code) = match service {
                    Service::Ec2 => (503, "RequestLimitExceeded"),
                    Service::Sts | Service::Rds | Service::Elasticache | Service::Redshift => {
                        (400, "Throttling")
                    }
                    Service::Organizations => (400, "TooManyRequestsException"),
                    Service::Memorydb | Service::Opensearch | Service::Savingsplans => {
                        (400, "ThrottlingException")
                    }
                    // Cost Explorer models no throttling error of its own: its rate
                    // limit is LimitExceededException, which the SDK retries as one.
                    Service::Costexplorer => (400, "LimitExceededException"),
                };
                Self::new(status, code, "rate exceeded")
            }
            FaultError::Internal => {
                let code = match service {
                    Service::Ec2 => "InternalError",
                    Service::Organizations => "ServiceException",
                    Service::Opensearch => "InternalException",
                    Service::Savingsplans => "InternalServerException",
                    _ => "InternalFailure",
                };
                Self::new(500, code, "internal server error")
            }
            FaultError::AccessDenied => {
                Self::access_denied(service, "you are not authorized to perform this operation")
            }
        }
    }

    /// A 403 refusal in the service's own code: EC2 `UnauthorizedOperation`, the
    /// awsQuery services `AccessDenied`, the JSON ones `AccessDeniedException`.
    pub fn access_denied(service: Service, message: impl Into<String>) -> Self {
        let code = match service {
            Service::Ec2 => "UnauthorizedOperation",
            Service::Sts | Service::Rds | Service::Elasticache | Service::Redshift => {
                "AccessDenied"
            }
            _ => "AccessDeniedException",
        };
        Self::new(403, code, message)
    }

    /// Unknown or disabled access key.
    pub fn invalid_client_token_id() -> Self {
        Self::new(
            403,
            "InvalidClientTokenId",
            "the security token included in the request is invalid",
        )
    }

    /// Session credentials past their expiration.
    pub fn expired_token() -> Self {
        Self::new(
            400,
            "ExpiredToken",
            "the security token included in the request is expired",
        )
    }

    pub fn missing_authentication() -> Self {
        Self::new(
            403,
            "MissingAuthenticationToken",
            "request is missing authentication token",
        )
    }

    pub fn unknown_operation(service: Service, operation: &str) -> Self {
        let code = match service.protocol() {
            Protocol::Ec2Query | Protocol::AwsQuery => "InvalidAction",
            Protocol::AwsJson | Protocol::RestJson => "UnknownOperationException",
        };
        Self::bad_request(
            code,
            format!("the sandbox does not implement {service} {operation}"),
        )
    }
}

/// A successful reply body, before the protocol wraps it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reply {
    /// The inside of `<XResult>` (awsQuery) or of `<XResponse>` (EC2).
    Xml(String),
    /// An awsQuery reply with no result members.
    Empty,
    Json(Value),
}

/// The AWS side of one HTTP request.
#[derive(Debug, Clone)]
pub(crate) struct RawRequest {
    pub method: Method,
    pub path: String,
    pub query: Params,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The SigV4 credential scope of a request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CredentialScope {
    pub access_key_id: String,
    pub region: String,
    pub signing_name: String,
}

/// What a request asks for.
#[derive(Debug, Clone)]
pub(crate) struct Classified {
    pub service: Service,
    pub operation: String,
    pub scope: Option<CredentialScope>,
    /// Form parameters (query protocols) or URL query parameters (restJson GETs).
    pub params: Params,
    /// JSON body of the JSON protocols, `{}` when empty.
    pub json: Value,
}

/// Returns the credential scope of the `Authorization` header, if it is SigV4.
pub(crate) fn credential_scope(headers: &HeaderMap) -> Option<CredentialScope> {
    let authorization = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let credential = authorization
        .split([' ', ','])
        .find_map(|part| part.trim().strip_prefix("Credential="))?;
    let mut parts = credential.split('/');
    let access_key_id = parts.next()?.to_string();
    let _date = parts.next()?;
    let region = parts.next()?.to_string();
    let signing_name = parts.next()?.to_string();
    Some(CredentialScope {
        access_key_id,
        region,
        signing_name,
    })
}

const OPENSEARCH_PREFIX: &str = "/2021-01-01/opensearch/";
const SAVINGS_PLANS_OPERATIONS: [&str; 4] = [
    "CreateSavingsPlan",
    "DescribeSavingsPlans",
    "DescribeSavingsPlansOfferings",
    "DescribeSavingsPlansOfferingRates",
];

/// Tells the service and operation of a request from its signing scope, target
/// header, path and body; `None` when it is no AWS call the sandbox knows.
pub(crate) fn classify(request: &RawRequest) -> Option<Classified> {
    let scope = credential_scope(&request.headers);
    let scoped_service = scope
        .as_ref()
        .and_then(|scope| Service::from_signing_name(&scope.signing_name));

    if let Some(target) = request
        .headers
        .get("x-amz-target")
        .and_then(|value| value.to_str().ok())
    {
        let (prefix, operation) = target.split_once('.')?;
        let service = match prefix {
            "AWSOrganizationsV20161128" => Service::Organizations,
            "AmazonMemoryDB" => Service::Memorydb,
            "AWSInsightsIndexService" => Service::Costexplorer,
            _ => scoped_service?,
        };
        return Some(Classified {
            service,
            operation: operation.to_string(),
            scope,
            params: Params::default(),
            json: parse_json(&request.body),
        });
    }

    if let Some(rest) = request.path.strip_prefix(OPENSEARCH_PREFIX) {
        let operation = match (request.method.as_str(), rest.trim_end_matches('/')) {
            ("GET", "reservedInstanceOfferings") => "DescribeReservedInstanceOfferings",
            ("POST", "purchaseReservedInstanceOffering") => "PurchaseReservedInstanceOffering",
            ("GET", "reservedInstances") => "DescribeReservedInstances",
            (method, other) => return Some(unknown(Service::Opensearch, method, other, scope)),
        };
        return Some(Classified {
            service: Service::Opensearch,
            operation: operation.to_string(),
            scope,
            params: request.query.clone(),
            json: parse_json(&request.body),
        });
    }

    let path_operation = request.path.trim_start_matches('/');
    if scoped_service == Some(Service::Savingsplans)
        || SAVINGS_PLANS_OPERATIONS.contains(&path_operation)
    {
        return Some(Classified {
            service: Service::Savingsplans,
            operation: path_operation.to_string(),
            scope,
            params: Params::default(),
            json: parse_json(&request.body),
        });
    }

    let params = Params::parse(&request.body);
    let operation = params.get("Action")?.to_string();
    let service = scoped_service
        .filter(|service| matches!(service.protocol(), Protocol::AwsQuery | Protocol::Ec2Query))
        .or_else(|| params.get("Version").and_then(Service::from_query_version))?;
    Some(Classified {
        service,
        operation,
        scope,
        params,
        json: Value::Null,
    })
}

fn unknown(
    service: Service,
    method: &str,
    path: &str,
    scope: Option<CredentialScope>,
) -> Classified {
    Classified {
        service,
        operation: format!("{method} {path}"),
        scope,
        params: Params::default(),
        json: Value::Null,
    }
}

fn parse_json(body: &[u8]) -> Value {
    if body.iter().all(u8::is_ascii_whitespace) {
        return json!({});
    }
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

/// The HTTP response type of the AWS side.
pub(crate) type HttpResponse = Response<Full<Bytes>>;

/// Writes a successful reply in the service's protocol.
pub(crate) fn render_reply(
    service: Service,
    operation: &str,
    reply: Reply,
    request_id: &str,
) -> HttpResponse {
    match (service.protocol(), reply) {
        (Protocol::Ec2Query, Reply::Xml(inner)) => xml_response(
            200,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{operation}Response xmlns=\"{namespace}\"><requestId>{request_id}</requestId>{inner}</{operation}Response>",
                namespace = service.xml_namespace()
            ),
            request_id,
        ),
        (Protocol::Ec2Query, _) => xml_response(
            200,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{operation}Response xmlns=\"{namespace}\"><requestId>{request_id}</requestId></{operation}Response>",
                namespace = service.xml_namespace()
            ),
            request_id,
        ),
        (Protocol::AwsQuery, reply) => {
            let result = match reply {
                Reply::Xml(inner) => format!("<{operation}Result>{inner}</{operation}Result>"),
                _ => String::new(),
            };
            xml_response(
                200,
                format!(
                    "<{operation}Response xmlns=\"{namespace}\">{result}<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{operation}Response>",
                    namespace = service.xml_namespace()
                ),
                request_id,
            )
        }
        (Protocol::AwsJson, reply) => json_response(
            200,
            "application/x-amz-json-1.1",
            reply_json(reply),
            None,
            request_id,
        ),
        (Protocol::RestJson, reply) => {
            json_response(200, "application/json", reply_json(reply), None, request_id)
        }
    }
}

fn reply_json(reply: Reply) -> Value {
    match reply {
        Reply::Json(value) => value,
        _ => json!({}),
    }
}

/// Writes an error in the service's protocol.
pub(crate) fn render_error(service: Service, error: &AwsError, request_id: &str) -> HttpResponse {
    match service.protocol() {
        Protocol::Ec2Query => {
            let mut body = XmlWriter::new();
            body.open("Response")
                .open("Errors")
                .open("Error")
                .element("Code", &error.code)
                .element("Message", &error.message)
                .close("Error")
                .close("Errors")
                .element("RequestID", request_id)
                .close("Response");
            xml_response(
                error.status,
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}",
                    body.finish()
                ),
                request_id,
            )
        }
        Protocol::AwsQuery => {
            let kind = if error.status >= 500 {
                "Receiver"
            } else {
                "Sender"
            };
            let mut body = XmlWriter::new();
            body.open("Error")
                .element("Type", kind)
                .element("Code", &error.code)
                .element("Message", &error.message)
                .close("Error")
                .element("RequestId", request_id);
            xml_response(
                error.status,
                format!(
                    "<ErrorResponse xmlns=\"{namespace}\">{inner}</ErrorResponse>",
                    namespace = service.xml_namespace(),
                    inner = body.finish()
                ),
                request_id,
            )
        }
        Protocol::AwsJson => json_response(
            error.status,
            "application/x-amz-json-1.1",
            json!({"__type": error.code, "message": error.message}),
            Some(&error.code),
            request_id,
        ),
        Protocol::RestJson => json_response(
            error.status,
            "application/json",
            json!({"message": error.message}),
            Some(&error.code),
            request_id,
        ),
    }
}

/// An error for a request that names no service the sandbox knows.
pub(crate) fn render_unroutable(request_id: &str) -> HttpResponse {
    json_response(
        400,
        "application/json",
        json!({"__type": "UnknownOperationException", "message": "the sandbox cannot tell which aws service this request is for"}),
        Some("UnknownOperationException"),
        request_id,
    )
}

fn xml_response(status: u16, body: String, request_id: &str) -> HttpResponse {
    build_response(
        status,
        "text/xml;charset=UTF-8",
        body.into_bytes(),
        None,
        request_id,
    )
}

fn json_response(
    status: u16,
    content_type: &str,
    body: Value,
    error_type: Option<&str>,
    request_id: &str,
) -> HttpResponse {
    build_response(
        status,
        content_type,
        body.to_string().into_bytes(),
        error_type,
        request_id,
    )
}

fn build_response(
    status: u16,
    content_type: &str,
    body: Vec<u8>,
    error_type: Option<&str>,
    request_id: &str,
) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", value);
    }
    if let Some(value) = error_type.and_then(|code| HeaderValue::from_str(code).ok()) {
        headers.insert("x-amzn-errortype", value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)], method: Method, path: &str, body: &str) -> RawRequest {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        RawRequest {
            method,
            path: path.to_string(),
            query: Params::default(),
            headers: map,
            body: Bytes::from(body.to_string()),
        }
    }

    const AUTH_EC2: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/eu-west-1/ec2/aws4_request, SignedHeaders=host, Signature=abc";

    #[test]
    fn the_credential_scope_names_key_region_and_service() {
        let request = request(&[("authorization", AUTH_EC2)], Method::POST, "/", "");
        let scope = credential_scope(&request.headers).unwrap();
        assert_eq!(scope.access_key_id, "AKIDEXAMPLE");
        assert_eq!(scope.region, "eu-west-1");
        assert_eq!(scope.signing_name, "ec2");
    }

    #[test]
    fn create_tags_is_told_apart_by_scope_or_version() {
        let ec2 = classify(&request(
            &[("authorization", AUTH_EC2)],
            Method::POST,
            "/",
            "Action=CreateTags&Version=2016-11-15",
        ))
        .unwrap();
        assert_eq!(ec2.service, Service::Ec2);
        let redshift = classify(&request(
            &[],
            Method::POST,
            "/",
            "Action=CreateTags&Version=2012-12-01",
        ))
        .unwrap();
        assert_eq!(redshift.service, Service::Redshift);
    }

    #[test]
    fn json_targets_and_paths_pick_the_operation() {
        let organizations = classify(&request(
            &[("x-amz-target", "AWSOrganizationsV20161128.ListAccounts")],
            Method::POST,
            "/",
            "{}",
        ))
        .unwrap();
        assert_eq!(organizations.service, Service::Organizations);
        assert_eq!(organizations.operation, "ListAccounts");
        let opensearch = classify(&request(
            &[],
            Method::GET,
            "/2021-01-01/opensearch/reservedInstances",
            "",
        ))
        .unwrap();
        assert_eq!(opensearch.operation, "DescribeReservedInstances");
        let savings = classify(&request(&[], Method::POST, "/CreateSavingsPlan", "{}")).unwrap();
        assert_eq!(savings.service, Service::Savingsplans);
        let cost_explorer = classify(&request(
            &[(
                "x-amz-target",
                "AWSInsightsIndexService.GetReservationPurchaseRecommendation",
            )],
            Method::POST,
            "/",
            "{}",
        ))
        .unwrap();
        assert_eq!(cost_explorer.service, Service::Costexplorer);
        assert_eq!(
            cost_explorer.operation,
            "GetReservationPurchaseRecommendation"
        );
    }
}
