"""The words of the member's privacy centre, in Chinese (the default) and English."""

from __future__ import annotations

LANGUAGES = ("zh-CN", "en")

# key: (zh-CN, en); ``{name}`` fields are filled by :func:`text`
_TEXT: dict[str, tuple[str, str]] = {
    "privacy_centre": ("隐私中心", "Privacy centre"),
    "switch_language": ("English", "中文"),
    "sign_out": ("退出", "Sign out"),
    "signed_in_as": ("当前账户", "Signed in as"),
    "skip": ("跳到正文", "Skip to content"),
    "choices": ("您的授权", "Your choices"),
    "choices_intro": (
        "以下用途只有在您同意后才会使用您的信息。撤回与同意一样简单，随时生效，从下一次使用起计。",
        "These uses happen only with your consent. Withdrawing is as easy as granting and counts from the next use.",
    ),
    "partners": ("合作品牌", "Partner brands"),
    "partners_intro": (
        "向每个合作品牌提供信息都需要您单独同意；未同意的品牌收不到任何信息。",
        "Each partner brand needs your separate consent; a brand you did not choose receives nothing.",
    ),
    "purpose": ("用途", "Purpose"),
    "state": ("状态", "State"),
    "action": ("操作", "Action"),
    "allowed": ("已同意", "Allowed"),
    "not_allowed": ("未同意", "Not allowed"),
    "grant": ("同意", "Grant"),
    "withdraw": ("撤回", "Withdraw"),
    "renew": ("重新确认", "Renew"),
    "what_it_means": ("说明", "What it means"),
    "reason_no_consent": ("尚未同意", "not chosen yet"),
    "reason_consent_withdrawn": ("已撤回", "withdrawn"),
    "reason_consent_expired": ("已过期", "expired"),
    "reason_notice_renewal_required": ("隐私政策已更新，需要重新确认", "the notice changed: renew to keep it"),
    "reason_guardian_consent_required": ("需要监护人同意", "needs your guardian's consent"),
    "reason_minor_excluded": ("不适用于未成年人", "not for minors"),
    "reason_consent_granted": ("已同意", "granted"),
    "receipts": ("授权凭证", "Consent receipts"),
    "receipts_intro": (
        "每次同意或撤回都会生成一份由本节点签名的凭证。您可以下载，并用本节点的公钥离线核验。",
        "Every grant or withdrawal gives a receipt signed by this node: download it and check it offline "
        "with the node's key.",
    ),
    "receipt_issued": ("已生成授权凭证", "A signed receipt was issued"),
    "download": ("下载", "Download"),
    "check_receipt": ("核验凭证", "Check a receipt"),
    "check_receipt_intro": (
        "粘贴凭证全文，本节点用它的公钥核验签名。离线核验时使用下面的公钥：",
        "Paste a receipt: the node checks its signature with its key. The same key for checking offline:",
    ),
    "receipt_text": ("凭证全文", "Receipt text"),
    "check": ("核验", "Check"),
    "receipt_valid": ("签名有效：这是本节点签发的凭证。", "Valid: this node signed this receipt."),
    "receipt_invalid": ("签名无效：{reason}", "Not valid: {reason}"),
    "node_key": ("本节点的公钥", "This node's key"),
    "my_data": ("我的数据", "My data"),
    "my_data_intro": (
        "查看本品牌保存的关于您的全部信息（访问请求会被记录），并可下载为 JSON 文件。",
        "See everything this brand holds about you (the access request is recorded), and download it as JSON.",
    ),
    "show_my_data": ("查看我的数据", "Show my data"),
    "download_json": ("下载 JSON", "Download JSON"),
    "section": ("类别", "Section"),
    "corrections": ("更正", "Corrections"),
    "birth_date": ("出生日期", "Date of birth"),
    "save": ("保存", "Save"),
    "corrected": ("已更正", "Corrected"),
    "phone": ("手机号", "Phone number"),
    "phone_intro": (
        "仅在您同意与某个合作品牌共同建模时，用于在不透露名单的情况下找出共同会员。",
        "Used only to find members in common with a partner you chose for joint modeling, without showing either list.",
    ),
    "remove": ("删除", "Remove"),
    "no_phone": ("未登记", "none registered"),
    "requests": ("我的权利请求", "My rights requests"),
    "kind": ("类型", "Kind"),
    "received": ("收到时间", "Received"),
    "deadline": ("处理期限", "Deadline"),
    "none_yet": ("暂无", "None yet"),
    "churn": ("流失风险说明", "Why we think you might leave"),
    "churn_off": (
        "您没有同意个性化，所以我们不为您单独计算风险。",
        "You did not allow personalization, so no risk is computed for you alone.",
    ),
    "risk": ("风险", "Risk"),
    "factor": ("因素", "Factor"),
    "effect": ("影响", "Effect"),
    "erase": ("注销并删除我的数据", "Erase my data and close my account"),
    "erase_what": (
        "删除后：您的资料被删除，您的密钥被销毁（加密粉碎），日志中与您有关的记录再也无法与您关联；"
        "您的积分作废，登录链接全部失效。此操作无法撤销。",
        "Erasing deletes your details and destroys your key (crypto-shredding): entries about you in the "
        "logs can no longer be linked to you; your points are void and every sign-in link stops working. "
        "It cannot be undone.",
    ),
    "erase_not": (
        "不会删除的：已签名日志中不含身份信息的条目（为保证账目可核验而保留），以及法律要求保存的记录。",
        "What stays: signed log entries that no longer identify you (kept so the accounts stay verifiable), "
        "and records the law requires us to keep.",
    ),
    "erase_confirm": ("我明白此操作无法撤销", "I understand this cannot be undone"),
    "erase_button": ("确认删除", "Erase now"),
    "erased": ("您的数据已删除。", "Your data is erased."),
    "signed_out": ("您已退出。", "You are signed out."),
    "link_needed": (
        "请从品牌应用中重新打开隐私中心（链接只能使用一次，几分钟内有效）。",
        "Open the privacy centre again from the brand's app (a link works once, for a few minutes).",
    ),
    "continue": ("继续", "Continue"),
    "form_refused": ("表单已过期，请刷新页面后重试。", "This form has expired: reload the page and try again."),
}


def text(lang: str, key: str, **fields: object) -> str:
    """The words for ``key`` in ``lang`` (English when the language is not Chinese)."""
    zh, en = _TEXT[key]
    words = zh if lang == "zh-CN" else en
    return words.format(**fields) if fields else words
