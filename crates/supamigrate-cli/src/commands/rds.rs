//! `supamigrate rds plan|create|status|settings|delete`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use supamigrate::rds::api::{self, Created, DeletePlan, InstanceDelete, Status};
use supamigrate::rds::files::TargetEnv;
use supamigrate::rds::settings::Phase;
use supamigrate::rds::{self, Call, PasswordMode, RdsPlan};

use super::to_json;
use crate::args::{Cli, InstanceOptions, PhaseArg, RdsCommand};
use crate::ui::ask;

/// Runs one `rds` command.
pub async fn rds(cli: &Cli, action: &RdsCommand) -> anyhow::Result<()> {
    match action {
        RdsCommand::Plan { instance, json } => {
            let (id, opts) = (&instance.instance_id, &instance.opts);
            let (plan, region) = make_plan(cli, id, opts).await?;
            if *json {
                println!("{}", to_json(&plan)?);
            } else {
                print!("{}", describe(&plan, &region, &env_path(cli, id, None)));
            }
            Ok(())
        }
        RdsCommand::Create {
            instance,
            wait,
            env_out,
            yes,
            json,
        } => {
            let ask = Ask {
                yes: *yes,
                json: *json,
            };
            let (_, created, env_file, env) = make_instance(
                cli,
                &instance.instance_id,
                &instance.opts,
                wait.wait(),
                env_out.as_deref(),
                ask,
            )
            .await?;
            if *json {
                println!("{}", to_json(&created)?);
            } else {
                print_created(&created, &env, &env_file);
            }
            Ok(())
        }
        RdsCommand::Status { instance_id, json } => {
            let client = api::client().await?;
            let status = api::status(&client, instance_id).await?;
            if *json {
                println!("{}", to_json(&status)?);
            } else {
                print_status(instance_id, &status);
            }
            Ok(())
        }
        RdsCommand::Settings { instance_id, phase } => settings(instance_id, *phase).await,
        RdsCommand::Delete {
            instance_id,
            skip_final_snapshot,
            wait,
            yes,
        } => delete(instance_id, *skip_final_snapshot, wait.wait(), *yes).await,
    }
}

/// How `make_instance` asks and shows.
#[derive(Debug, Clone, Copy)]
pub struct Ask {
    /// Go ahead without asking.
    pub yes: bool,
    /// Show no plan (the caller prints JSON).
    pub json: bool,
}

/// `rds create`'s work, for it and `run --create-instance`: the plan shown
/// and confirmed, the calls made, the wait, the target configuration
/// written (returned with its path).
pub async fn make_instance(
    cli: &Cli,
    id: &str,
    opts: &InstanceOptions,
    wait: api::Wait,
    env_out: Option<&Path>,
    how: Ask,
) -> anyhow::Result<(RdsPlan, Created, PathBuf, TargetEnv)> {
    let (plan, region) = make_plan(cli, id, opts).await?;
    let env_file = env_path(cli, id, env_out);
    if !how.json {
        print!("{}", describe(&plan, &region, &env_file));
    }
    let question = if plan.reuse {
        "Use this instance?"
    } else {
        "Make this instance now?"
    };
    ask(question, how.yes, "nothing was created")?;
    let client = api::client().await?;
    let progress = |status: &str, t: Duration| {
        eprintln!("rds: {} is {status} ({} s)", plan.instance_id, t.as_secs());
    };
    let created = api::execute(&client, &plan, wait, &progress).await?;
    let env = target_env(cli, opts, &plan, &created)?;
    env.write(&env_file)?;
    Ok((plan, created, env_file, env))
}

/// Puts the instance's parameter group in `phase` and says what changed.
pub async fn settings_for(instance_id: &str, phase: Phase) -> anyhow::Result<()> {
    let client = api::client().await?;
    let call = api::set_phase(&client, instance_id, phase).await?;
    let name = match phase {
        Phase::Load => "the load",
        Phase::Production => "production",
    };
    println!("rds: {instance_id}'s parameters, for {name} (in effect without a reboot):");
    print_call(&call);
    Ok(())
}

async fn settings(instance_id: &str, phase: PhaseArg) -> anyhow::Result<()> {
    let phase = match phase {
        PhaseArg::Load => Phase::Load,
        PhaseArg::Production => Phase::Production,
    };
    settings_for(instance_id, phase).await
}

async fn delete(
    instance_id: &str,
    skip_final_snapshot: bool,
    wait: api::Wait,
    yes: bool,
) -> anyhow::Result<()> {
    let client = api::client().await?;
    let plan = api::delete_plan(&client, instance_id, skip_final_snapshot).await?;
    print!("{}", describe_delete(&plan));
    ask(
        &format!("Go ahead and delete the instance {instance_id}?"),
        yes,
        "nothing was deleted",
    )?;
    let progress = |status: &str, t: Duration| {
        eprintln!("rds: {instance_id} is {status} ({} s)", t.as_secs());
    };
    api::delete(&client, &plan, wait, &progress).await?;
    match &plan.instance {
        Some(InstanceDelete::Delete {
            final_snapshot: Some(s),
            ..
        }) => println!("rds: {instance_id} deleted; its final snapshot is {s}"),
        Some(InstanceDelete::Delete { .. }) => {
            println!("rds: {instance_id} deleted, without a final snapshot")
        }
        _ => println!("rds: {instance_id} deleted"),
    }
    Ok(())
}

/// The plan for `instance`, and the region it is for.
async fn make_plan(
    cli: &Cli,
    id: &str,
    opts: &InstanceOptions,
) -> anyhow::Result<(RdsPlan, String)> {
    let req = opts.request(id)?;
    rds::check_identifier(&req.id)?;
    let source = supamigrate::ops::rds_source_facts(&cli.settings()?).await?;
    let client = api::client().await?;
    let region = client
        .config()
        .region()
        .map(|r| r.to_string())
        .unwrap_or_default();
    let facts = api::facts(&client, &req.id, source).await?;
    Ok((rds::plan(&req, &facts)?, region))
}

fn env_path(cli: &Cli, id: &str, given: Option<&Path>) -> PathBuf {
    given.map(Path::to_path_buf).unwrap_or_else(|| {
        supamigrate::ops::StateDir::new(&cli.state_dir)
            .rds_dir()
            .join(format!("{id}.env"))
    })
}

/// The CA bundle the target configuration names.
pub fn ca_bundle(cli: &Cli, opts: &InstanceOptions) -> PathBuf {
    opts.ca_bundle.clone().unwrap_or_else(|| {
        supamigrate::ops::StateDir::new(&cli.state_dir)
            .rds_dir()
            .join("global-bundle.pem")
    })
}

fn target_env(
    cli: &Cli,
    opts: &InstanceOptions,
    plan: &RdsPlan,
    created: &Created,
) -> anyhow::Result<TargetEnv> {
    let Some((host, port)) = created.instance.endpoint.clone() else {
        anyhow::bail!(
            "the instance {} is available but has no endpoint",
            plan.instance_id
        );
    };
    let password = match opts.request(&plan.instance_id)?.password {
        PasswordMode::File(f) => Some(rds::files::master_password(&f)?),
        PasswordMode::Managed => None,
    };
    Ok(TargetEnv {
        host,
        port,
        database: plan.database.clone(),
        user: plan.master_user.clone(),
        ca_bundle: ca_bundle(cli, opts),
        password,
        secret_arn: created.instance.secret_arn.clone(),
    })
}

/// The plan for people.
fn describe(plan: &RdsPlan, region: &str, env_file: &Path) -> String {
    let mut s = format!(
        "rds plan: instance {} in {region}{}\n\ndecisions:\n",
        plan.instance_id,
        if plan.reuse { " (exists: reused)" } else { "" }
    );
    for d in &plan.decisions {
        s += &format!("  {}: {} ({})\n", d.subject, d.choice, d.why);
    }
    s += "\nAPI calls, in order:\n";
    for (i, c) in plan.calls.iter().enumerate() {
        s += &format!("  {}. {}\n", i + 1, c.action());
        for (k, v) in c.params() {
            s += &format!("       {k} = {v}\n");
        }
    }
    s += &format!(
        "\nthen: the target configuration written to {} (RDS_HOST, RDS_PORT, RDS_DATABASE={}, RDS_USER={}, sslmode=verify-full)\nafter the copy: `supamigrate rds settings --instance-id {} --for production` resets the bulk-load parameters\n",
        env_file.display(),
        plan.database,
        plan.master_user,
        plan.instance_id
    );
    s
}

fn print_call(call: &Call) {
    println!("  {}", call.action());
    for (k, v) in call.params() {
        println!("    {k} = {v}");
    }
}

fn print_created(created: &Created, env: &TargetEnv, env_file: &Path) {
    let i = &created.instance;
    println!(
        "rds: {} is available: PostgreSQL {} on {}:{} ({}, {} GiB {}, {}encrypted, {})",
        i.id,
        i.engine_version,
        env.host,
        env.port,
        i.class,
        i.storage_gib,
        i.storage_type,
        if i.encrypted { "" } else { "NOT " },
        if i.public {
            "publicly accessible"
        } else {
            "not publicly accessible"
        }
    );
    println!("rds: calls made:");
    for c in &created.calls {
        print_call(c);
    }
    println!(
        "rds: the target configuration is in {} (owner-only); load it with: set -a; . {}; set +a",
        env_file.display(),
        env_file.display()
    );
    match (&env.password, &i.secret_arn) {
        (Some(_), _) => println!("rds: the generated master password is in that file and in the --password-file"),
        (None, Some(arn)) => println!(
            "rds: the master password is in AWS Secrets Manager, secret {arn}; put it in ~/.pgpass (or RDS_PASSWORD) for `supamigrate run`"
        ),
        (None, None) => {}
    }
    if !env.ca_bundle.is_file() {
        println!(
            "rds: sslrootcert is {}, which does not exist yet: download https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem there (or give --ca-bundle)",
            env.ca_bundle.display()
        );
    }
}

fn print_status(id: &str, status: &Status) {
    let Some(i) = &status.instance else {
        println!("rds: there is no instance {id}");
        return;
    };
    let endpoint = i
        .endpoint
        .as_ref()
        .map(|(h, p)| format!("{h}:{p}"))
        .unwrap_or_else(|| "no endpoint yet".into());
    println!(
        "rds: {id} is {}: PostgreSQL {} at {endpoint}; {} {} GiB {}; Multi-AZ {}; encrypted {}; public {}; deletion protection {}; backups {} days; extended support {}",
        i.status,
        i.engine_version,
        i.class,
        i.storage_gib,
        i.storage_type,
        i.multi_az,
        i.encrypted,
        i.public,
        i.deletion_protection,
        i.backup_retention_days,
        i.lifecycle.as_deref().unwrap_or("not reported"),
    );
    if status.parameters.is_empty() {
        println!("rds: no supamigrate parameter group");
        return;
    }
    let phase = match status.phase {
        Some(Phase::Load) => "the bulk-load settings (for the copy)",
        Some(Phase::Production) => "production settings (the bulk-load ones reset)",
        None => "a mix of settings (neither `--for load` nor `--for production`)",
    };
    println!(
        "rds: parameter group {} holds {phase}:",
        rds::parameter_group_name(id)
    );
    for (name, value) in &status.parameters {
        println!(
            "  {name} = {}",
            value.as_deref().unwrap_or("(the engine's default)")
        );
    }
}

fn describe_delete(plan: &DeletePlan) -> String {
    let mut s = format!("rds delete: instance {}\n", plan.id);
    let mut steps = Vec::new();
    match &plan.instance {
        None => steps.push("the instance is gone already".to_string()),
        Some(InstanceDelete::AlreadyDeleting) => {
            steps.push("the instance is being deleted already (an earlier delete)".to_string())
        }
        Some(InstanceDelete::Delete {
            final_snapshot,
            unprotect,
        }) => {
            if *unprotect {
                steps.push("ModifyDBInstance: DeletionProtection = false (it is on)".to_string());
            }
            steps.push(match final_snapshot {
                Some(snap) => format!("DeleteDBInstance: FinalDBSnapshotIdentifier = {snap}"),
                None => "DeleteDBInstance: SkipFinalSnapshot = true (--skip-final-snapshot: its data is gone for good)".to_string(),
            });
        }
    }
    if let Some(g) = &plan.parameter_group {
        steps.push(format!(
            "DescribeDBInstances until it is gone, then DeleteDBParameterGroup: {g}"
        ));
    }
    for (i, step) in steps.iter().enumerate() {
        s += &format!("  {}. {step}\n", i + 1);
    }
    s
}
