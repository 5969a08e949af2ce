//! What the library's tests share: a context for a sandbox, and the schema
//! steps a copy needs first.

use std::path::Path;

use supamigrate::config::Settings;
use supamigrate::connect::ConnInfo;
use supamigrate::events;
use supamigrate::ops::{AlwaysYes, Context, Migration, StateDir};
use supamigrate::plan::{MigrationPlan, PlanOverrides, Section};
use supamigrate::provision::ProvisionRequest;

/// A context for migrating `source` to `target`, state in `state`.
pub fn context(
    source: ConnInfo,
    target: ConnInfo,
    overrides: PlanOverrides,
    state: &Path,
) -> Context {
    Context {
        settings: Settings::new(source, target, None),
        state_dir: state.to_path_buf(),
        overrides,
        observer: events::quiet(),
    }
}

/// The migration of `plan` between `ctx`'s sides, no secrets, no lock.
pub fn migration(ctx: &Context, plan: MigrationPlan) -> Migration {
    Migration::new(
        ctx.settings.source().unwrap().clone(),
        ctx.settings.target().unwrap().clone(),
        plan,
        Default::default(),
        ctx.observer.clone(),
        StateDir::new(&ctx.state_dir),
    )
}

/// The plan, provisioned, with pre-data applied.
pub async fn provision_and_pre_data(ctx: &Context) -> MigrationPlan {
    let req = ProvisionRequest {
        password: None,
        secrets_dir: ctx.state_dir.clone(),
    };
    supamigrate::ops::provision(ctx, &req, &AlwaysYes)
        .await
        .expect("provision");
    supamigrate::ops::schema_apply(ctx, &[Section::PreData])
        .await
        .expect("pre-data");
    ctx.plan().await.expect("the plan is stored").plan
}
