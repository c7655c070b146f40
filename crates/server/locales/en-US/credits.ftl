# The credits page (SPEC §10), in English. Amounts arrive already formatted ($amount);
# $count is a plain number where the words depend on it.

page-title = Credits
skip-to-usage = Skip to usage details
language = Language
account-line = Account { $account }
times-in = Times in { $zone }

membership-none = No membership
membership-trial = Trial membership
membership-active = Membership active
membership-lapsed = Membership inactive

balance-heading = Your credits
total = Available now
general = Credits
general-hint = For every tool and AI Agent task
agent = Agent Credits
agent-hint = For AI Agent tasks only; used first there
held = In progress
held-hint = Reserved for generations still running
frozen = Frozen
frozen-explained = { $amount } credits are frozen because your membership is not active. Reactivate your membership to use them again. Frozen credits still expire on their own date.
next-expiry = Next expiry
next-expiry-value = { $amount } on { $date }
no-expiry = None of your credits expire

expiring-heading = Expiring soon
expiring-empty = No credits expire in the next 30 days.
expiring-on = Expires { $date }
frozen-mark = frozen

chart-heading = Credits over the last 90 days
chart-desc = End-of-day credits from { $from } to { $to }. Credits went from { $general_from } to { $general_to }; Agent Credits from { $agent_from } to { $agent_to }.
chart-figures = Show the figures
date = Date

usage-heading = Usage details
filter-type = Show
type-all = Everything
type-usage = Generations
type-grants = Credits received
type-expiries = Expired credits
type-adjustments = Adjustments
filter-month = Month
month-all = All months
apply = Apply
download-csv = Download CSV
older = Older
newest = Back to newest
usage-empty = Nothing to show for this choice.

status-pending = In progress
status-captured = Done
status-released = Refunded
status-expired = Timed out, refunded

charged = Charged
returned = Returned
paid-with = Paid with
came-back = Came back
nothing-came-back = Nothing came back.
reference = Job { $reference }
held-now = { $amount } reserved

tier-general = Standard
tier-premium = Premium

kind-general = Credits
kind-agent = Agent Credits

source-daily_login = Daily login
source-membership_agent = Monthly Agent Credits
source-subscription = Monthly membership credits
source-trial = Trial credits
source-purchase = Purchased credits
source-promotion = Promotion
source-compensation = Compensation
source-refund_grace = Returned after expiry

entry-expire = Expired: { $source }
entry-adjust = Adjustment by support
entry-freeze = Frozen while the membership is inactive
entry-unfreeze = Usable again: membership reactivated
order = Order { $order }

unit-count = { $unit ->
    [image] { $count ->
        [one] 1 image
       *[other] { $count } images
    }
    [second] { $count ->
        [one] 1 second
       *[other] { $count } seconds
    }
    [model] { $count ->
        [one] 1 model
       *[other] { $count } models
    }
    [item] { $count ->
        [one] 1 item
       *[other] { $count } items
    }
   *[other] { $count } × { $unit }
}
delivered-of = { $delivered } of { $quantity } delivered

signed-out-title = Please open this page again
signed-out-text = This page shows the credits of one account and needs a fresh link from your account. Open Credits from your profile picture to continue.
badge-title = Your credits
