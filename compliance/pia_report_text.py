"""The impact-assessment report's words: Simplified Chinese (what a regulator reads, the default) and
English. Each entry is a ``str.format`` template; :mod:`compliance.pia_report` fills them.

The assessment's own texts (legitimacy, necessity, impact, measures) are the officers' words and
are reported as they wrote them.
"""

from __future__ import annotations

LANGUAGES = ("zh-CN", "en")

WORDS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Personal information impact assessment: {name}",
        "generated": (
            "Generated {at:%Y-%m-%d %H:%M} UTC from the live configuration of node {node}. "
            "PIPL Art. 55-56; method after GB/T 39335 (data map, impact, likelihood, risk level, measures). "
            "Engineering record, not legal advice."
        ),
        "environment": "1. Processing environment",
        "item": "item",
        "value": "value",
        "node": "node",
        "region": "hosting region",
        "allowed": "regions allowed to receive PI",
        "notice": "current privacy notice",
        "notice_version": "v{version} sha256 {sha256}",
        "notice_none": "none published",
        "pipo": "PI protection officer contact",
        "pipo_none": "not published",
        "members": "registered members",
        "recipients": "Recipients (peer nodes)",
        "peer_headers": "node|region|endpoint|cross-border",
        "yes": "yes",
        "no": "no",
        "no_peers": "No peers are configured: nothing leaves this node.",
        "data_map": "2. Data map",
        "data_map_intro": (
            "Each purpose, its legal basis (PIPL Art. 13), the consent it needs and the PI categories it may use."
        ),
        "data_map_headers": "purpose|legal basis|consent|PI categories|members consenting now",
        "sensitive": " (sensitive)",
        "named_sensitive": "the named sensitive category",
        "no_consent_needed": "not needed (contract)",
        "cross_border": "3. Cross-border transfers",
        "cross_border_counts": (
            "Distinct individuals sent abroad in {year}: {general:,} general, {sensitive:,} sensitive. "
            "Mechanism required at these counts: {required} (2024 Cross-Border Provisions: a standard contract or "
            "PI protection certification from 100,000 general or any sensitive, a security assessment from "
            "1,000,000 general or 10,000 sensitive)."
        ),
        "mechanism_headers": "country|mechanism|reference|valid until",
        "no_mechanism": "No transfer mechanism is recorded.",
        "duties": "4. Thresholds and duties",
        "pipo_alert": (
            "PI protection officer: {members:,} members - at or above {threshold:,}: ALERT, appoint a PIPO, publish "
            "the contact and report to the city-level CAC within 30 working days"
        ),
        "pipo_ok": "PI protection officer: {members:,} members - below {threshold:,}, no PIPO filing is due",
        "rights": "Rights requests open: {open}; past their 15-working-day deadline: {overdue}",
        "switches": "5. Feature switches",
        "switch_headers": "feature|state|assessment|why",
        "on": "ON",
        "off": "off",
        "assessments": "6. Assessments",
        "no_assessment": "No assessment has been submitted: every feature that needs one stays off.",
        "features": "features",
        "purposes": "purposes",
        "author": "author",
        "approved": "approved",
        "not_yet": "not yet",
        "expires": "expires",
        "kept_until": "kept until",
        "risk": "likelihood / risk level",
        "legitimacy": "Legitimacy: {text}",
        "necessity": "Necessity: {text}",
        "impact": "Impact: {text}",
        "mechanism.none": "none",
        "mechanism.standard_contract": "standard contract (or PI protection certification)",
        "mechanism.security_assessment": "security assessment",
    },
    "zh-CN": {
        "title": "个人信息保护影响评估报告：{name}",
        "generated": (
            "依据节点 {node} 的实时配置于 {at:%Y-%m-%d %H:%M}（UTC）生成。依据《个人信息保护法》第五十五条、"
            "第五十六条；方法参照 GB/T 39335（数据映射、影响程度、可能性、风险等级、保护措施）。"
            "本报告为工程记录，不构成法律意见。"
        ),
        "environment": "一、处理环境",
        "item": "项目",
        "value": "内容",
        "node": "节点",
        "region": "托管地区",
        "allowed": "允许接收个人信息的地区",
        "notice": "现行个人信息处理规则（隐私政策）",
        "notice_version": "第 {version} 版，sha256 {sha256}",
        "notice_none": "尚未发布",
        "pipo": "个人信息保护负责人联系方式",
        "pipo_none": "未公布",
        "members": "注册会员数",
        "recipients": "接收方（对等节点）",
        "peer_headers": "节点|地区|接入地址|是否出境",
        "yes": "是",
        "no": "否",
        "no_peers": "未配置对等节点：个人信息不会离开本节点。",
        "data_map": "二、数据映射",
        "data_map_intro": (
            "每项处理目的、其合法性基础（《个人信息保护法》第十三条）、所需的同意及可使用的个人信息类别。"
        ),
        "data_map_headers": "处理目的|合法性基础|同意类型|个人信息类别|当前同意人数",
        "sensitive": "（敏感）",
        "named_sensitive": "所指定的敏感个人信息类别",
        "no_consent_needed": "无需同意（订立、履行合同所必需）",
        "cross_border": "三、向境外提供个人信息",
        "cross_border_counts": (
            "{year} 年向境外提供个人信息的自然人数：一般个人信息 {general:,} 人，敏感个人信息 {sensitive:,} 人。"
            "按此人数应采用的机制：{required}（依据 2024 年《促进和规范数据跨境流动规定》：一般个人信息累计满 10 万人"
            "或含任何敏感个人信息，须订立个人信息出境标准合同或者通过个人信息保护认证；一般个人信息满 100 万人"
            "或敏感个人信息满 1 万人，须申报数据出境安全评估）。"
        ),
        "mechanism_headers": "国家或地区|机制|备案或评估编号|有效期至",
        "no_mechanism": "未记录任何跨境提供机制。",
        "duties": "四、阈值与义务",
        "pipo_alert": (
            "个人信息保护负责人：会员 {members:,} 人，已达到 {threshold:,} 人：警示，须指定个人信息保护负责人、"
            "公开其联系方式，并在 30 个工作日内向设区的市级网信部门报送个人信息保护负责人信息"
        ),
        "pipo_ok": "个人信息保护负责人：会员 {members:,} 人，低于 {threshold:,} 人，无需报送",
        "rights": "未办结的个人权利请求：{open} 件；超过 15 个工作日期限：{overdue} 件",
        "switches": "五、功能开关",
        "switch_headers": "功能|状态|影响评估|原因",
        "on": "开启",
        "off": "关闭",
        "assessments": "六、影响评估记录",
        "no_assessment": "尚未提交影响评估：需要评估的功能均保持关闭。",
        "features": "涉及功能",
        "purposes": "处理目的",
        "author": "编写人",
        "approved": "批准",
        "not_yet": "尚未批准",
        "expires": "有效期至",
        "kept_until": "保存至",
        "risk": "可能性 / 风险等级",
        "legitimacy": "合法性：{text}",
        "necessity": "必要性：{text}",
        "impact": "影响：{text}",
        "mechanism.none": "无需专门机制（告知、单独同意和影响评估仍须履行）",
        "mechanism.standard_contract": "订立个人信息出境标准合同或者通过个人信息保护认证",
        "mechanism.security_assessment": "申报数据出境安全评估",
    },
}


def words(language: str) -> dict[str, str]:
    """The report's words in ``language`` (``ValueError`` naming the languages there are)."""
    if language not in WORDS:
        raise ValueError(f"the report is written in {' or '.join(LANGUAGES)}, not {language!r}")
    return WORDS[language]
