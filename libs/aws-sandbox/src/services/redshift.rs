//! Redshift (awsQuery): reserved node offerings, purchases, descriptions and tags.
//! Purchases carry no client id, so the only handle on a node bought blind is its tag.
//! Whether reserved nodes can be tagged at all is a behaviour switch
//! (`redshift_reserved_node_tags`): when `rejected`, tag calls naming one answer
//! `InvalidTagFault`.

use std::collections::BTreeMap;

use crate::catalogue::{Offering, OfferingQuery};
use crate::ledger::Commitment;
use crate::protocol::{AwsError, Reply, XmlWriter};
use crate::services::{
    CallContext, build_commitment, commit, new_commitment_id, paginate, purchase_count, query_tags,
    xml_time,
};
use crate::state::SandboxState;

pub(crate) fn handle(
    context: &mut CallContext<'_>,
    state: &mut SandboxState,
) -> Result<Reply, AwsError> {
    match context.operation {
        "DescribeReservedNodeOfferings" => describe_offerings(context, state),
        "PurchaseReservedNodeOffering" => purchase(context, state),
        "DescribeReservedNodes" => describe_reserved(context, state),
        "DescribeTags" => describe_tags(context, state),
        "CreateTags" => create_tags(context, state),
        other => Err(AwsError::unknown_operation(context.service, other)),
    }
}

/// The ARN Redshift tag calls name a reserved node by.
pub(crate) fn node_arn(commitment: &Commitment) -> String {
    format!(
        "arn:aws:redshift:{}:{}:reservednode:{}",
        commitment.region, commitment.account_id, commitment.commitment_id
    )
}

/// Whether `resource_name` is the ARN of a reserved node
/// (`arn:aws:redshift:<region>:<account>:reservednode:<id>`), whether or not it exists.
fn is_reserved_node_arn(resource_name: &str) -> bool {
    let parts: Vec<&str> = resource_name.split(':').collect();
    parts.len() >= 7 && parts[0] == "arn" && parts[2] == "redshift" && parts[5] == "reservednode"
}

/// Whether `resource_name` names a reserved node: any reserved node's ARN, or the bare
/// id of one of the caller's nodes.
fn names_reserved_node(
    context: &CallContext<'_>,
    state: &SandboxState,
    resource_name: &str,
) -> bool {
    is_reserved_node_arn(resource_name)
        || state
            .commitments_in(&context.account_id, &context.region, context.service)
            .any(|commitment| commitment.commitment_id == resource_name)
}

/// The refusal of a tag call on a reserved node, when the behaviour switch says
/// reserved nodes cannot be tagged.
fn reserved_node_tags_rejected() -> AwsError {
    AwsError::bad_request("InvalidTagFault", "reserved nodes cannot be tagged")
}

fn offering_not_found(offering_id: &str) -> AwsError {
    AwsError::new(
        404,
        "ReservedNodeOfferingNotFound",
        format!("specified offering {offering_id} does not exist"),
    )
}

fn describe_offerings(
    context: &mut CallContext<'_>,
    state: &mut SandboxState,
) -> Result<Reply, AwsError> {
    let offerings: Vec<Offering> = match context.params.non_empty("ReservedNodeOfferingId") {
        Some(offering_id) => vec![
            state
                .find_offering(context.service, &context.region, offering_id)
                .ok_or_else(|| offering_not_found(offering_id))?,
        ],
        None => {
            state.describe_offerings(context.service, &context.region, &OfferingQuery::default())
        }
    };
    let (page, marker) = paginate(
        context.service,
        &offerings,
        context.params.get("Marker"),
        context.integer("MaxRecords")?,
        100,
    )?;
    let mut xml = XmlWriter::new();
    xml.open("ReservedNodeOfferings");
    for offering in &page {
        xml.open("ReservedNodeOffering")
            .element("ReservedNodeOfferingId", &offering.offering_id);
        write_offering_fields(&mut xml, offering);
        xml.close("ReservedNodeOffering");
    }
    xml.close("ReservedNodeOfferings")
        .optional("Marker", marker);
    Ok(Reply::Xml(xml.finish()))
}

fn write_offering_fields(xml: &mut XmlWriter, offering: &Offering) {
    xml.element("NodeType", &offering.instance_type)
        .element("Duration", offering.duration_seconds)
        .element("FixedPrice", offering.fixed_price)
        .element("UsagePrice", offering.usage_price)
        .element("CurrencyCode", &offering.currency)
        .element("OfferingType", &offering.payment)
        .element("ReservedNodeOfferingType", &offering.class)
        .open("RecurringCharges");
    if offering.recurring_hourly > 0.0 {
        xml.open("RecurringCharge")
            .element("RecurringChargeAmount", offering.recurring_hourly)
            .element("RecurringChargeFrequency", "Hourly")
            .close("RecurringCharge");
    }
    xml.close("RecurringCharges");
}

fn write_reserved(xml: &mut XmlWriter, commitment: &Commitment) {
    xml.open("ReservedNode")
        .element("ReservedNodeId", &commitment.commitment_id)
        .element("ReservedNodeOfferingId", &commitment.offering_id)
        .element("StartTime", xml_time(commitment.created_at))
        .element("NodeCount", commitment.count)
        .element("State", &commitment.state);
    write_offering_fields(xml, &commitment.offering);
    xml.close("ReservedNode");
}

fn purchase(context: &mut CallContext<'_>, state: &mut SandboxState) -> Result<Reply, AwsError> {
    let offering_id = context.required("ReservedNodeOfferingId")?.to_string();
    let count = purchase_count(context.service, context.integer("NodeCount")?)?;
    let offering = state
        .find_offering(context.service, &context.region, &offering_id)
        .ok_or_else(|| offering_not_found(&offering_id))?;
    let commitment = build_commitment(
        context,
        offering,
        new_commitment_id(),
        count,
        BTreeMap::new(),
    );
    let mut xml = XmlWriter::new();
    write_reserved(&mut xml, &commitment);
    commit(context, state, commitment);
    Ok(Reply::Xml(xml.finish()))
}

fn describe_reserved(
    context: &mut CallContext<'_>,
    state: &mut SandboxState,
) -> Result<Reply, AwsError> {
    let node_id = context.params.non_empty("ReservedNodeId");
    let matching: Vec<Commitment> = state
        .commitments_in(&context.account_id, &context.region, context.service)
        .filter(|commitment| node_id.is_none_or(|id| id == commitment.commitment_id))
        .cloned()
        .collect();
    if let Some(node_id) = node_id
        && matching.is_empty()
    {
        return Err(AwsError::new(
            404,
            "ReservedNodeNotFound",
            format!("reserved node {node_id} not found"),
        ));
    }
    let (page, marker) = paginate(
        context.service,
        &matching,
        context.params.get("Marker"),
        context.integer("MaxRecords")?,
        100,
    )?;
    let mut xml = XmlWriter::new();
    xml.open("ReservedNodes");
    for commitment in &page {
        write_reserved(&mut xml, commitment);
    }
    xml.close("ReservedNodes").optional("Marker", marker);
    Ok(Reply::Xml(xml.finish()))
}

/// Whether a resource name (an ARN or a bare id) names this node.
fn names(resource_name: &str, commitment: &Commitment) -> bool {
    resource_name == commitment.commitment_id || resource_name == node_arn(commitment)
}

fn is_reserved_node_type(resource_type: &str) -> bool {
    let normalized: String = resource_type
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    normalized == "reservednode"
}

fn describe_tags(
    context: &mut CallContext<'_>,
    state: &mut SandboxState,
) -> Result<Reply, AwsError> {
    let resource_name = context.params.non_empty("ResourceName");
    let resource_type = context.params.non_empty("ResourceType");
    let tag_keys = context.params.list("TagKeys.TagKey");
    let tag_values = context.params.list("TagValues.TagValue");
    let rejected = state.behaviour.redshift_rejects_reserved_node_tags();
    if rejected
        && (resource_type.is_some_and(is_reserved_node_type)
            || resource_name.is_some_and(|name| names_reserved_node(context, state, name)))
    {
        return Err(reserved_node_tags_rejected());
    }
    if resource_type.is_some_and(|resource_type| !is_reserved_node_type(resource_type)) {
        // The sandbox has no other taggable Redshift resources.
        return Ok(Reply::Xml(
            "<TaggedResources></TaggedResources>".to_string(),
        ));
    }
    let mut tagged: Vec<(String, String, String)> = Vec::new();
    // Where reserved nodes cannot be tagged, none is listed as tagged.
    let listed = state
        .commitments_in(&context.account_id, &context.region, context.service)
        .filter(|_| !rejected);
    for commitment in listed {
        if resource_name.is_some_and(|name| !names(name, commitment)) {
            continue;
        }
        for (key, value) in &commitment.tags {
            let key_ok = tag_keys.is_empty() || tag_keys.contains(key);
            let value_ok = tag_values.is_empty() || tag_values.contains(value);
            if key_ok && value_ok {
                tagged.push((node_arn(commitment), key.clone(), value.clone()));
            }
        }
    }
    let (page, marker) = paginate(
        context.service,
        &tagged,
        context.params.get("Marker"),
        context.integer("MaxRecords")?,
        100,
    )?;
    let mut xml = XmlWriter::new();
    xml.open("TaggedResources");
    for (arn, key, value) in &page {
        xml.open("TaggedResource")
            .open("Tag")
            .element("Key", key)
            .element("Value", value)
            .close("Tag")
            .element("ResourceName", arn)
            .element("ResourceType", "reserved-node")
            .close("TaggedResource");
    }
    xml.close("TaggedResources").optional("Marker", marker);
    Ok(Reply::Xml(xml.finish()))
}

fn create_tags(context: &mut CallContext<'_>, state: &mut SandboxState) -> Result<Reply, AwsError> {
    let resource_name = context.required("ResourceName")?.to_string();
    let tags = query_tags(context.params, "Tags.Tag");
    if tags.is_empty() {
        return Err(AwsError::missing_parameter(context.service, "Tags"));
    }
    context.note.note_tags(&tags);
    if state.behaviour.redshift_rejects_reserved_node_tags()
        && names_reserved_node(context, state, &resource_name)
    {
        return Err(reserved_node_tags_rejected());
    }
    let commitment_id = state
        .commitments_in(&context.account_id, &context.region, context.service)
        .find(|commitment| names(&resource_name, commitment))
        .map(|commitment| commitment.commitment_id.clone())
        .ok_or_else(|| {
            AwsError::new(
                404,
                "ResourceNotFoundFault",
                format!("the resource {resource_name} could not be found"),
            )
        })?;
    state.update_commitment(
        &context.account_id,
        &context.region,
        context.service,
        &commitment_id,
        |commitment| commitment.tags.extend(tags),
    );
    context.note.commitment_id = Some(commitment_id);
    Ok(Reply::Empty)
}
