# 积分页面（SPEC §10），简体中文。$amount 已按语言格式化；$count 为数字。

page-title = 积分
skip-to-usage = 跳到使用明细
language = 语言
account-line = 账户 { $account }
times-in = 时间以 { $zone } 显示

membership-none = 未开通会员
membership-trial = 会员试用中
membership-active = 会员有效
membership-lapsed = 会员已失效

balance-heading = 我的积分
total = 当前可用
general = 积分
general-hint = 可用于所有工具和 AI Agent 任务
agent = Agent 积分
agent-hint = 仅用于 AI Agent 任务，并优先使用
held = 进行中
held-hint = 为仍在进行的生成任务预留
frozen = 已冻结
frozen-explained = 因会员未生效，{ $amount } 积分已冻结。重新开通会员即可再次使用。冻结的积分仍按原到期日过期。
next-expiry = 最近到期
next-expiry-value = { $date } 到期 { $amount }
no-expiry = 暂无即将到期的积分

expiring-heading = 即将到期
expiring-empty = 未来 30 天内没有积分到期。
expiring-on = { $date } 到期
frozen-mark = 已冻结

chart-heading = 近 90 天积分变化
chart-desc = { $from } 至 { $to } 每日结束时的积分：积分从 { $general_from } 变为 { $general_to }；Agent 积分从 { $agent_from } 变为 { $agent_to }。
chart-figures = 查看数据
date = 日期

usage-heading = 使用明细
filter-type = 显示
type-all = 全部
type-usage = 生成任务
type-grants = 获得的积分
type-expiries = 过期的积分
type-adjustments = 调整
filter-month = 月份
month-all = 全部月份
apply = 应用
download-csv = 下载 CSV
older = 更早
newest = 回到最新
usage-empty = 没有符合条件的记录。

status-pending = 进行中
status-captured = 已完成
status-released = 已退还
status-expired = 已超时，已退还

charged = 扣除
returned = 退还
paid-with = 支付来源
came-back = 退还去向
nothing-came-back = 没有退还。
reference = 任务 { $reference }
held-now = 预留 { $amount }

tier-general = 标准
tier-premium = 高级

kind-general = 积分
kind-agent = Agent 积分

source-daily_login = 每日登录
source-membership_agent = 每月 Agent 积分
source-subscription = 每月会员积分
source-trial = 试用积分
source-purchase = 购买的积分
source-promotion = 活动赠送
source-compensation = 补偿
source-refund_grace = 过期后退还

entry-expire = 已过期：{ $source }
entry-adjust = 客服调整
entry-freeze = 会员失效期间冻结
entry-unfreeze = 重新开通会员，恢复可用
order = 订单 { $order }

unit-count = { $unit ->
    [image] { $count } 张图片
    [second] { $count } 秒
    [model] { $count } 个模型
    [item] { $count } 项
   *[other] { $count } × { $unit }
}
delivered-of = 已交付 { $delivered } / { $quantity }

signed-out-title = 请重新打开此页面
signed-out-text = 此页面显示一个账户的积分，需要从您的账户重新打开。请点击头像中的“积分”继续。
badge-title = 我的积分
