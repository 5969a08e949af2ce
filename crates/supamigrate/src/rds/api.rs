//! RDS through `aws-sdk-rds`, with the standard AWS configuration (region,
//! profile, `AWS_ENDPOINT_URL_RDS`): the facts a plan is made from, the
//! plan's calls carried out, the wait, status, the parameter group's phase,
//! and delete. Every AWS error is classified ([`Error::aws`]).

use std::time::{Duration, Instant};

use aws_sdk_rds::types::{ApplyMethod, DbInstance, Parameter, Tag};
use aws_sdk_rds::Client;
use serde::{Deserialize, Serialize};

use super::settings::{self, Phase, Setting};
use super::versions::EngineVersion;
use super::{
    files, parameter_group_name, Call, InstanceFacts, InstanceSpec, PasswordMode, RdsFacts,
    RdsPlan, SourceFacts,
};
use crate::error::{Error, ErrorKind, Result};

/// An RDS client from the standard AWS configuration chain.
pub async fn client() -> Result<Client> {
    let config = crate::storage::store::aws_config().await;
    if config.region().is_none() {
        return Err(
            Error::invalid_input("no AWS region is configured: RDS instances live in one")
                .with_hint("set AWS_REGION (or a region in the AWS_PROFILE's configuration)"),
        );
    }
    Ok(Client::new(&config))
}

/// The master password RDS manages, read from its Secrets Manager secret
/// (a JSON `{"username", "password"}`), for `run --create-instance`.
pub async fn managed_password(secret_arn: &str) -> Result<crate::connect::Password> {
    #[derive(Deserialize)]
    struct Secret {
        password: String,
    }
    let config = crate::storage::store::aws_config().await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let out = client
        .get_secret_value()
        .secret_id(secret_arn)
        .send()
        .await
        .map_err(|e| {
            Error::aws(
                format!("reading the master password from Secrets Manager ({secret_arn})"),
                "secretsmanager:GetSecretValue",
                e,
            )
        })?;
    let text = out.secret_string().unwrap_or_default();
    // The error never quotes the secret's text.
    let secret: Secret = serde_json::from_str(text).map_err(|_| {
        Error::new(
            ErrorKind::Cloud,
            format!("the secret {secret_arn} does not hold RDS's {{\"username\", \"password\"}}"),
        )
    })?;
    Ok(crate::connect::Password::new(secret.password))
}

/// How long to wait for an instance, and how often to look.
#[derive(Debug, Clone, Copy)]
pub struct Wait {
    /// Between two looks.
    pub every: Duration,
    /// At most.
    pub at_most: Duration,
}

impl Default for Wait {
    fn default() -> Self {
        Wait {
            every: Duration::from_secs(15),
            at_most: Duration::from_secs(3600),
        }
    }
}

/// Told each time the instance is looked at while waiting.
pub type Progress<'a> = &'a (dyn Fn(&str, Duration) + Send + Sync);

/// Everything the plan for `id` is made from: the versions the region
/// offers, the instance and the parameter group if they exist.
pub async fn facts(client: &Client, id: &str, source: Option<SourceFacts>) -> Result<RdsFacts> {
    Ok(RdsFacts {
        versions: engine_versions(client).await?,
        instance: describe(client, id).await?,
        parameter_group_family: group_family(client, &parameter_group_name(id)).await?,
        source,
    })
}

/// `DescribeDBEngineVersions` for postgres, every page.
pub async fn engine_versions(client: &Client) -> Result<Vec<EngineVersion>> {
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = client
            .describe_db_engine_versions()
            .engine("postgres")
            .set_marker(marker.take())
            .send()
            .await
            .map_err(|e| {
                Error::aws(
                    "listing the PostgreSQL versions the region offers",
                    "DescribeDBEngineVersions",
                    e,
                )
            })?;
        out.extend(page.db_engine_versions().iter().filter_map(|v| {
            Some(EngineVersion {
                version: v.engine_version()?.to_string(),
                family: v.db_parameter_group_family()?.to_string(),
                status: v.status().unwrap_or("available").to_string(),
            })
        }));
        match page.marker() {
            Some(m) if !m.is_empty() => marker = Some(m.to_string()),
            _ => return Ok(out),
        }
    }
}

/// The instance `id`, or `None` when there is none.
pub async fn describe(client: &Client, id: &str) -> Result<Option<InstanceFacts>> {
    match client
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
    {
        Ok(out) => Ok(out.db_instances().first().map(instance_facts)),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_db_instance_not_found_fault()) =>
        {
            Ok(None)
        }
        Err(e) => Err(Error::aws(
            format!("describing the instance {id}"),
            "DescribeDBInstances",
            e,
        )),
    }
}

fn instance_facts(i: &DbInstance) -> InstanceFacts {
    let s = |v: Option<&str>| v.unwrap_or_default().to_string();
    InstanceFacts {
        id: s(i.db_instance_identifier()),
        status: s(i.db_instance_status()),
        class: s(i.db_instance_class()),
        engine_version: s(i.engine_version()),
        storage_gib: i.allocated_storage().unwrap_or(0).max(0) as u32,
        storage_type: s(i.storage_type()),
        multi_az: i.multi_az().unwrap_or(false),
        encrypted: i.storage_encrypted().unwrap_or(false),
        public: i.publicly_accessible().unwrap_or(false),
        backup_retention_days: i.backup_retention_period().unwrap_or(0).max(0) as u32,
        deletion_protection: i.deletion_protection().unwrap_or(false),
        parameter_group: i
            .db_parameter_groups()
            .first()
            .and_then(|g| g.db_parameter_group_name())
            .map(str::to_string),
        master_user: s(i.master_username()),
        database: i.db_name().map(str::to_string),
        endpoint: i
            .endpoint()
            .and_then(|e| Some((e.address()?.to_string(), e.port().unwrap_or(5432) as u16))),
        secret_arn: i
            .master_user_secret()
            .and_then(|m| m.secret_arn())
            .map(str::to_string),
        lifecycle: i.engine_lifecycle_support().map(str::to_string),
    }
}

/// The family of the parameter group `name`, or `None` when there is none.
async fn group_family(client: &Client, name: &str) -> Result<Option<String>> {
    match client
        .describe_db_parameter_groups()
        .db_parameter_group_name(name)
        .send()
        .await
    {
        Ok(out) => Ok(out
            .db_parameter_groups()
            .first()
            .and_then(|g| g.db_parameter_group_family())
            .map(str::to_string)),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_db_parameter_group_not_found_fault()) =>
        {
            Ok(None)
        }
        Err(e) => Err(Error::aws(
            format!("describing the parameter group {name}"),
            "DescribeDBParameterGroups",
            e,
        )),
    }
}

/// What `rds create` did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Created {
    /// The instance, available.
    pub instance: InstanceFacts,
    /// The calls made, in order (as the plan listed them).
    pub calls: Vec<Call>,
}

/// Carries out `plan`'s calls in order. When one fails, the error also
/// names what the calls before it made (left in place, reused by the next
/// `create`, removed by `rds delete`).
pub async fn execute(
    client: &Client,
    plan: &RdsPlan,
    wait: Wait,
    progress: Progress<'_>,
) -> Result<Created> {
    let mut made: Vec<String> = Vec::new();
    let mut instance = None;
    for call in &plan.calls {
        let r = match call {
            Call::CreateDBParameterGroup { name, family } => create_group(client, name, family)
                .await
                .map(|()| made.push(format!("the parameter group {name}"))),
            Call::ModifyDBParameterGroup { name, settings } => set(client, name, settings).await,
            Call::ResetDBParameterGroup { name, parameters } => {
                reset(client, name, parameters).await
            }
            Call::CreateDBInstance(spec) => create_instance(client, spec)
                .await
                .map(|()| made.push(format!("the instance {}", spec.id))),
            Call::WaitAvailable { id } => wait_available(client, id, wait, progress)
                .await
                .map(|i| instance = Some(i)),
        };
        if let Err(e) = r {
            return Err(with_leftovers(e, &made, &plan.instance_id));
        }
    }
    let instance =
        instance.ok_or_else(|| Error::internal("the plan did not wait for the instance"))?;
    Ok(Created {
        instance,
        calls: plan.calls.clone(),
    })
}

fn with_leftovers(e: Error, made: &[String], id: &str) -> Error {
    if made.is_empty() {
        return e;
    }
    let hint = e.hint().map(str::to_string);
    let err = Error::new(
        e.kind(),
        format!(
            "{}; made before this and left in place: {} (`supamigrate rds create` again reuses them; `supamigrate rds delete --instance-id {id}` removes them)",
            e.message(),
            made.join(", ")
        ),
    );
    match hint {
        Some(h) => err.with_hint(h),
        None => err,
    }
}

async fn create_group(client: &Client, name: &str, family: &str) -> Result<()> {
    client
        .create_db_parameter_group()
        .db_parameter_group_name(name)
        .db_parameter_group_family(family)
        .description("supamigrate: TLS forced; bulk-load settings during the copy")
        .tags(Tag::builder().key("ManagedBy").value("supamigrate").build())
        .send()
        .await
        .map_err(|e| {
            Error::aws(
                format!("creating the parameter group {name}"),
                "CreateDBParameterGroup",
                e,
            )
        })?;
    Ok(())
}

async fn set(client: &Client, name: &str, settings: &[Setting]) -> Result<()> {
    let params = settings
        .iter()
        .map(|s| {
            Parameter::builder()
                .parameter_name(&s.name)
                .parameter_value(&s.value)
                .apply_method(ApplyMethod::Immediate)
                .build()
        })
        .collect();
    client
        .modify_db_parameter_group()
        .db_parameter_group_name(name)
        .set_parameters(Some(params))
        .send()
        .await
        .map_err(|e| {
            Error::aws(
                format!("setting parameters in {name}"),
                "ModifyDBParameterGroup",
                e,
            )
        })?;
    Ok(())
}

async fn reset(client: &Client, name: &str, parameters: &[String]) -> Result<()> {
    let params = parameters
        .iter()
        .map(|p| {
            Parameter::builder()
                .parameter_name(p)
                .apply_method(ApplyMethod::Immediate)
                .build()
        })
        .collect();
    client
        .reset_db_parameter_group()
        .db_parameter_group_name(name)
        .set_parameters(Some(params))
        .send()
        .await
        .map_err(|e| {
            Error::aws(
                format!("resetting parameters in {name}"),
                "ResetDBParameterGroup",
                e,
            )
        })?;
    Ok(())
}

async fn create_instance(client: &Client, s: &InstanceSpec) -> Result<()> {
    let mut req = client
        .create_db_instance()
        .db_instance_identifier(&s.id)
        .db_instance_class(&s.class)
        .engine("postgres")
        .engine_version(&s.engine_version)
        .engine_lifecycle_support(&s.lifecycle)
        .allocated_storage(s.storage_gib as i32)
        .set_max_allocated_storage(s.max_storage_gib.map(|g| g as i32))
        .storage_type("gp3")
        .storage_encrypted(true)
        .multi_az(s.multi_az)
        .backup_retention_period(s.backup_retention_days as i32)
        .publicly_accessible(s.publicly_accessible)
        .deletion_protection(s.deletion_protection)
        .copy_tags_to_snapshot(true)
        .db_parameter_group_name(&s.parameter_group)
        .master_username(&s.master_user)
        .set_db_name(s.database.clone())
        .set_db_subnet_group_name(s.subnet_group.clone())
        .set_vpc_security_group_ids(
            (!s.security_groups.is_empty()).then(|| s.security_groups.clone()),
        );
    for (k, v) in &s.tags {
        req = req.tags(Tag::builder().key(k).value(v).build());
    }
    // The password goes in the request body over HTTPS only: never in
    // argv, logs or the plan.
    req = match &s.password {
        PasswordMode::Managed => req.manage_master_user_password(true),
        PasswordMode::File(path) => {
            req.master_user_password(files::master_password(path)?.expose())
        }
    };
    req.send().await.map_err(|e| {
        Error::aws(
            format!("creating the instance {}", s.id),
            "CreateDBInstance",
            e,
        )
    })?;
    Ok(())
}

/// States an instance does not leave by waiting.
const FAILED: &[&str] = &[
    "failed",
    "incompatible-parameters",
    "incompatible-network",
    "incompatible-option-group",
    "incompatible-restore",
    "inaccessible-encryption-credentials",
    "storage-full",
    "restore-error",
];

/// Looks at the instance every `wait.every` until it is `available`.
pub async fn wait_available(
    client: &Client,
    id: &str,
    wait: Wait,
    progress: Progress<'_>,
) -> Result<InstanceFacts> {
    let started = Instant::now();
    loop {
        let Some(i) = describe(client, id).await? else {
            return Err(Error::new(
                ErrorKind::Cloud,
                format!("the instance {id} disappeared while waiting for it"),
            )
            .with_hint("someone deleted it: `supamigrate rds create` makes it again"));
        };
        progress(&i.status, started.elapsed());
        if i.status == "available" {
            return Ok(i);
        }
        if FAILED.contains(&i.status.as_str()) {
            return Err(Error::new(
                ErrorKind::Cloud,
                format!("the instance {id} is {}: it will not become available by waiting", i.status),
            )
            .with_hint("see its events in the RDS console (or `aws rds describe-events --source-identifier ID`); `supamigrate rds delete` removes it"));
        }
        if started.elapsed() > wait.at_most {
            return Err(Error::new(
                ErrorKind::Connection,
                format!(
                    "the instance {id} is still {} after {} s",
                    i.status,
                    wait.at_most.as_secs()
                ),
            )
            .with_hint(
                "run `supamigrate rds create` again to keep waiting (it reuses the instance)",
            ));
        }
        tokio::time::sleep(wait.every).await;
    }
}

/// `rds status`: the instance and what its parameter group holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// The instance, if it exists.
    pub instance: Option<InstanceFacts>,
    /// supamigrate's parameter group's values for the settings it manages
    /// (name, value; `None`: the engine's default).
    pub parameters: Vec<(String, Option<String>)>,
    /// Which phase those values are.
    pub phase: Option<Phase>,
}

/// The instance and its parameter group's phase.
pub async fn status(client: &Client, id: &str) -> Result<Status> {
    let instance = describe(client, id).await?;
    let group = parameter_group_name(id);
    let mut parameters = Vec::new();
    let mut phase = None;
    if group_family(client, &group).await?.is_some() {
        let user = user_parameters(client, &group).await?;
        let managed: Vec<Setting> = settings::always()
            .into_iter()
            .chain(settings::bulk_load())
            .collect();
        for s in &managed {
            parameters.push((
                s.name.clone(),
                user.iter()
                    .find(|(n, _)| n == &s.name)
                    .map(|(_, v)| v.clone()),
            ));
        }
        let holds = |list: &[Setting]| {
            list.iter().all(|s| {
                parameters
                    .iter()
                    .any(|(n, v)| n == &s.name && v.as_deref() == Some(&s.value))
            })
        };
        let bulk_reset = settings::bulk_load()
            .iter()
            .all(|s| parameters.iter().any(|(n, v)| n == &s.name && v.is_none()));
        phase = if holds(&settings::always()) && holds(&settings::bulk_load()) {
            Some(Phase::Load)
        } else if holds(&settings::always()) && bulk_reset {
            Some(Phase::Production)
        } else {
            None
        };
    }
    Ok(Status {
        instance,
        parameters,
        phase,
    })
}

/// The parameters set by the user (not the engine's defaults) in `group`.
async fn user_parameters(client: &Client, group: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = client
            .describe_db_parameters()
            .db_parameter_group_name(group)
            .source("user")
            .set_marker(marker.take())
            .send()
            .await
            .map_err(|e| {
                Error::aws(
                    format!("reading the parameters of {group}"),
                    "DescribeDBParameters",
                    e,
                )
            })?;
        out.extend(page.parameters().iter().filter_map(|p| {
            Some((
                p.parameter_name()?.to_string(),
                p.parameter_value()?.to_string(),
            ))
        }));
        match page.marker() {
            Some(m) if !m.is_empty() => marker = Some(m.to_string()),
            _ => return Ok(out),
        }
    }
}

/// The call that puts the parameter group in `phase`.
pub fn phase_call(id: &str, phase: Phase) -> Call {
    let name = parameter_group_name(id);
    match phase {
        Phase::Load => Call::ModifyDBParameterGroup {
            name,
            settings: super::phase_settings(Phase::Load),
        },
        Phase::Production => Call::ResetDBParameterGroup {
            name,
            parameters: settings::bulk_load().into_iter().map(|s| s.name).collect(),
        },
    }
}

/// Puts the instance's parameter group in `phase` (the bulk-load settings
/// for the copy, or back to the engine's defaults for traffic); returns
/// the call made.
pub async fn set_phase(client: &Client, id: &str, phase: Phase) -> Result<Call> {
    let group = parameter_group_name(id);
    if group_family(client, &group).await?.is_none() {
        return Err(Error::invalid_input(format!(
            "the instance {id} has no supamigrate parameter group ({group})"
        ))
        .with_hint("only instances made by `supamigrate rds create` have one; set the parameters in the RDS console"));
    }
    let call = phase_call(id, phase);
    match &call {
        Call::ModifyDBParameterGroup { name, settings } => set(client, name, settings).await?,
        Call::ResetDBParameterGroup { name, parameters } => reset(client, name, parameters).await?,
        _ => return Err(Error::internal("a phase is a parameter group change")),
    }
    Ok(call)
}

/// What `rds delete` does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletePlan {
    /// Identifier.
    pub id: String,
    /// What happens to the instance: `None` when it is already gone (an
    /// interrupted delete left only the parameter group).
    pub instance: Option<InstanceDelete>,
    /// supamigrate's parameter group, deleted once the instance is gone.
    pub parameter_group: Option<String>,
}

/// The instance's part of a [`DeletePlan`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InstanceDelete {
    /// It is being deleted already (an earlier `delete`): only wait.
    AlreadyDeleting,
    /// Delete it.
    Delete {
        /// The final snapshot's identifier; `None`: no final snapshot (asked for).
        final_snapshot: Option<String>,
        /// Deletion protection is on and is turned off first.
        unprotect: bool,
    },
}

/// The delete plan for `id`: the instance or supamigrate's parameter group must exist.
pub async fn delete_plan(
    client: &Client,
    id: &str,
    skip_final_snapshot: bool,
) -> Result<DeletePlan> {
    super::check_identifier(id)?;
    let group = parameter_group_name(id);
    let group = group_family(client, &group).await?.map(|_| group);
    let instance = describe(client, id).await?;
    if instance.is_none() && group.is_none() {
        return Err(Error::invalid_input(format!("there is no instance {id} to delete"))
            .with_hint("`supamigrate rds status --instance-id ID` shows an instance; check the region (AWS_REGION)"));
    }
    let stamp: String = crate::clock::utc_now()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    Ok(DeletePlan {
        id: id.to_string(),
        instance: instance.map(|i| {
            if i.status == "deleting" {
                InstanceDelete::AlreadyDeleting
            } else {
                InstanceDelete::Delete {
                    final_snapshot: (!skip_final_snapshot).then(|| format!("{id}-final-{stamp}")),
                    unprotect: i.deletion_protection,
                }
            }
        }),
        parameter_group: group,
    })
}

async fn delete_instance(
    client: &Client,
    id: &str,
    final_snapshot: Option<&str>,
    unprotect: bool,
) -> Result<()> {
    if unprotect {
        client
            .modify_db_instance()
            .db_instance_identifier(id)
            .deletion_protection(false)
            .apply_immediately(true)
            .send()
            .await
            .map_err(|e| {
                Error::aws(
                    format!("turning off deletion protection on {id}"),
                    "ModifyDBInstance",
                    e,
                )
            })?;
    }
    let req = client.delete_db_instance().db_instance_identifier(id);
    let req = match final_snapshot {
        Some(s) => req
            .final_db_snapshot_identifier(s)
            .skip_final_snapshot(false),
        None => req.skip_final_snapshot(true),
    };
    req.send()
        .await
        .map_err(|e| Error::aws(format!("deleting the instance {id}"), "DeleteDBInstance", e))?;
    Ok(())
}

/// Deletes as `plan` says and waits until the instance is gone. A re-run
/// after an interruption finishes the job: it waits for an instance being
/// deleted, and deletes a parameter group left behind.
pub async fn delete(
    client: &Client,
    plan: &DeletePlan,
    wait: Wait,
    progress: Progress<'_>,
) -> Result<()> {
    let id = &plan.id;
    if let Some(InstanceDelete::Delete {
        final_snapshot,
        unprotect,
    }) = &plan.instance
    {
        delete_instance(client, id, final_snapshot.as_deref(), *unprotect).await?;
    }
    let started = Instant::now();
    while let Some(i) = describe(client, id).await? {
        progress(&i.status, started.elapsed());
        if started.elapsed() > wait.at_most {
            return Err(Error::new(
                ErrorKind::Connection,
                format!(
                    "the instance {id} is still {} after {} s",
                    i.status,
                    wait.at_most.as_secs()
                ),
            )
            .with_hint("it is being deleted; `supamigrate rds status` shows when it is gone"));
        }
        tokio::time::sleep(wait.every).await;
    }
    progress("deleted", started.elapsed());
    if let Some(group) = &plan.parameter_group {
        client
            .delete_db_parameter_group()
            .db_parameter_group_name(group)
            .send()
            .await
            .map_err(|e| {
                Error::aws(
                    format!("deleting the parameter group {group} (the instance is deleted)"),
                    "DeleteDBParameterGroup",
                    e,
                )
            })?;
    }
    Ok(())
}
