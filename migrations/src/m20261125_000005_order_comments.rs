//! When workbridge last added a comment (work log) to an order in the EAM,
//! so that merges comment at most once per interval.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261125_000005_order_comments"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("work_orders"))
                    .add_column(ColumnDef::new(Alias::new("last_comment_at")).timestamp_with_time_zone().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table(Alias::new("work_orders")).drop_column(Alias::new("last_comment_at")).to_owned(),
            )
            .await
    }
}
