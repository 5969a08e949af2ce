//! What the library's tests share: a context for a sandbox, and the schema
//! steps a copy needs first.

use std::path::Path;

use supamigrate::config::Settings;
use supamigrate::connect::ConnInfo;
use supamigrate::events;
use supamigrate::ops::{AlwaysYes, Context};
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

/// The plan, provisioned, with pre-data applied.
pub async fn provision_and_pre_data(ctx: &Context) -> MigrationPlan {
    let req = ProvisionRequest {
        password: None,
        secrets_dir: ctx.state_dir.clone(),
        secrets: Default::default(),
    };
    supamigrate::ops::provision(ctx, &req, &AlwaysYes)
        .await
        .expect("provision");
    supamigrate::ops::schema_apply(ctx, &[Section::PreData])
        .await
        .expect("pre-data");
    ctx.plan().await.expect("the plan is stored").plan
}
