//! How often an outbox row was claimed, and by which claim: a row claimed
//! again (its dispatcher crashed or its lease ran out) may already have
//! reached the EAM, so it is looked up by reference before it is created;
//! and a dispatcher renews each row's lease by its claim token before it
//! delivers it, so that two replicas never deliver the same row at once.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261125_000012_outbox_claims"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("outbox"))
                    .add_column(ColumnDef::new(Alias::new("claims")).integer().not_null().default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("outbox"))
                    .add_column(ColumnDef::new(Alias::new("claim_token")).text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in ["claim_token", "claims"] {
            manager
                .alter_table(Table::alter().table(Alias::new("outbox")).drop_column(Alias::new(column)).to_owned())
                .await?;
        }
        Ok(())
    }
}
