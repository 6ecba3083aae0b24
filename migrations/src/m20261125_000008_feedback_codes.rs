//! Per connector, the EAM's closure or failure codes that count as planner
//! feedback (useful / false alarm).

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261125_000008_feedback_codes"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("connectors"))
                    .add_column(ColumnDef::new(Alias::new("feedback_codes")).json().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table(Alias::new("connectors")).drop_column(Alias::new("feedback_codes")).to_owned(),
            )
            .await
    }
}
