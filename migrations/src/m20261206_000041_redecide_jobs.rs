//! Re-decision jobs (issue 19, §3): stored events decided again against
//! today's registry and rules, in bounded batches. A job's progress and
//! cursor are written in each batch's transaction, so that a restarted or
//! another replica resumes where the last committed batch ended; the lease
//! (`locked_until`, `claim_token`) lets one replica at a time run it. And
//! the indexes that the subject filter and the unmapped-subjects grouping read.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000041_redecide_jobs"
    }
}

fn ts(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name)).timestamp_with_time_zone().not_null().to_owned()
}
fn ts_null(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name)).timestamp_with_time_zone().null().to_owned()
}
fn count(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name)).big_integer().not_null().default(0).to_owned()
}
fn text_null(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name)).text().null().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("redecide_jobs"))
                    .if_not_exists()
                    .col(ColumnDef::new(Alias::new("id")).text().not_null().primary_key())
                    // queued | running | done | failed
                    .col(ColumnDef::new(Alias::new("state")).text().not_null())
                    .col(ColumnDef::new(Alias::new("filter")).json().not_null())
                    // Events received after this are not selected (the job's creation).
                    .col(ts("bound_at"))
                    .col(count("total"))
                    .col(count("processed"))
                    .col(count("changed"))
                    .col(count("unchanged"))
                    .col(count("failed"))
                    // The last event done, in (received_at, id) order.
                    .col(ts_null("cursor_received_at"))
                    .col(text_null("cursor_id"))
                    .col(text_null("error"))
                    .col(text_null("created_by"))
                    .col(ColumnDef::new(Alias::new("claims")).integer().not_null().default(0))
                    .col(ts_null("locked_until"))
                    .col(text_null("claim_token"))
                    .col(ts("created_at"))
                    .col(ts_null("started_at"))
                    .col(ts_null("finished_at"))
                    .col(ts("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_redecide_jobs_state")
                    .table(Alias::new("redecide_jobs"))
                    .col(Alias::new("state"))
                    .col(Alias::new("created_at"))
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // `GET /v1/events?subject=…` and the unmapped events grouped by tag.
        manager
            .create_index(
                Index::create()
                    .name("ix_events_subject")
                    .table(Alias::new("events"))
                    .col(Alias::new("subject"))
                    .col(Alias::new("received_at"))
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_events_outcome_subject")
                    .table(Alias::new("events"))
                    .col(Alias::new("outcome"))
                    .col(Alias::new("subject"))
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name("ix_events_outcome_subject").table(Alias::new("events")).to_owned())
            .await?;
        manager.drop_index(Index::drop().name("ix_events_subject").table(Alias::new("events")).to_owned()).await?;
        manager.drop_table(Table::drop().table(Alias::new("redecide_jobs")).to_owned()).await
    }
}
