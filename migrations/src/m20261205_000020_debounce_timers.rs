//! Timers of `held_for_minutes` debounces (issue 17, item 9): one row per
//! dedup key whose alert is held, due when the hold is complete, claimed by
//! the dispatcher with a lease as outbox rows are. And an index to find an
//! alert episode (same source, tag and code) from its clear.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261205_000020_debounce_timers"
    }
}

fn ts(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name)).timestamp_with_time_zone().not_null().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("debounce_timers"))
                    .if_not_exists()
                    .col(ColumnDef::new(Alias::new("dedup_key")).text().not_null().primary_key())
                    .col(ColumnDef::new(Alias::new("rule_id")).text().not_null())
                    // The latest held event of the episode, by (source, CloudEvents id).
                    .col(ColumnDef::new(Alias::new("event_source")).text().not_null())
                    .col(ColumnDef::new(Alias::new("event_ce_id")).text().not_null())
                    // Event time of the episode's first held event.
                    .col(ts("held_since"))
                    .col(ColumnDef::new(Alias::new("held_for_minutes")).integer().not_null())
                    // On the service's clock.
                    .col(ts("due_at"))
                    .col(ColumnDef::new(Alias::new("locked_until")).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(Alias::new("claim_token")).text().null())
                    .col(ts("created_at"))
                    .col(ts("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_debounce_timers_due")
                    .table(Alias::new("debounce_timers"))
                    .col(Alias::new("due_at"))
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_events_episode")
                    .table(Alias::new("events"))
                    .col(Alias::new("source"))
                    .col(Alias::new("code"))
                    .col(Alias::new("subject"))
                    .col(Alias::new("event_time"))
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name("ix_events_episode").table(Alias::new("events")).to_owned()).await?;
        manager.drop_table(Table::drop().table(Alias::new("debounce_timers")).to_owned()).await
    }
}
