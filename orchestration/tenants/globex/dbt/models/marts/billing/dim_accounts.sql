with

accounts as (
    select * from {{ ref('stg_erp__accounts') }}
),

contacts as (
    select * from {{ ref('stg_erp__contacts') }}
),

subscriptions as (
    select * from {{ ref('stg_erp__subscriptions') }}
),

plans as (
    select * from {{ ref('stg_erp__plans') }}
),

primary_contacts as (
    select distinct on (account_id)
        account_id,
        full_name as primary_contact_name,
        email as primary_contact_email
    from contacts
    where is_primary
    order by account_id, contact_id
),

contact_counts as (
    select account_id, count(*) as contacts
    from contacts
    group by account_id
),

current_subscriptions as (
    select distinct on (subscriptions.account_id)
        subscriptions.account_id,
        plans.plan_code as current_plan,
        subscriptions.seats as current_seats,
        subscriptions.seats * plans.monthly_price as current_mrr
    from subscriptions
    inner join plans on subscriptions.plan_id = plans.plan_id
    where subscriptions.status = 'active'
    order by subscriptions.account_id, subscriptions.started_on desc, subscriptions.subscription_id desc
),

first_subscriptions as (
    select account_id, min(started_on) as first_subscribed_on
    from subscriptions
    group by account_id
),

final as (
    select
        accounts.account_id,
        accounts.account_name,
        accounts.industry,
        accounts.country,
        accounts.created_at,
        primary_contacts.primary_contact_name,
        primary_contacts.primary_contact_email,
        coalesce(contact_counts.contacts, 0) as contacts,
        first_subscriptions.first_subscribed_on,
        current_subscriptions.current_plan,
        current_subscriptions.current_seats,
        coalesce(current_subscriptions.current_mrr, 0)::numeric(12, 2) as current_mrr,
        current_subscriptions.account_id is not null as is_customer
    from accounts
    left join primary_contacts on accounts.account_id = primary_contacts.account_id
    left join contact_counts on accounts.account_id = contact_counts.account_id
    left join current_subscriptions on accounts.account_id = current_subscriptions.account_id
    left join first_subscriptions on accounts.account_id = first_subscriptions.account_id
)

select * from final
