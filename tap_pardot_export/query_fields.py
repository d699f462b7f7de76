"""The v5 query API's objects as the tap reads them: collection, mode, date field, and the fields with their types.

Data only (:mod:`~tap_pardot_export.spec` makes the stream specs from it). The names, the modes
and the field lists are those the project decided from public evidence
(``pardot-v5-query-api.md``, "6. Decisions"): the union of the peers' field lists, less long
bodies (``htmlMessage``, ``textMessage``, ``layoutCss``, a layout template's HTML) and the
collections a query refuses. Fields are named as the API names them, each with its type:

``i`` integer, ``n`` number, ``s`` string, ``b`` boolean, ``dt`` date-time, ``date`` a date,
``obj`` a JSON object and ``ints`` an array of integers (one column holding the JSON value).

Modes: ``incremental`` (a dimension read whole on its first run, then by ``updatedAt``),
``whole`` (read whole every run), ``events`` (read in ``[start_date, end_date)`` on its date
field, windowed) and ``singleton`` (the account: one record, no paging).
"""

from __future__ import annotations

AUDIT = "createdAt:dt updatedAt:dt createdById:i updatedById:i"

#: stream -> (collection, mode, date field or "", fields)
OBJECTS: dict[str, tuple[str, str, str, str]] = {
    "account": (
        "account",
        "singleton",
        "",
        (
            "id:i company:s level:s website:s pluginCampaignId:i addressOne:s addressTwo:s city:s state:s zip:s "
            f"territory:s country:s phone:s fax:s adminId:i maximumDailyApiCalls:i apiCallsUsed:i {AUDIT}"
        ),
    ),
    "campaign": (
        "campaigns",
        "incremental",
        "updatedAt",
        f"id:i name:s cost:n folderId:i parentCampaignId:i salesforceId:s isDeleted:b {AUDIT}",
    ),
    "custom_field": (
        "custom-fields",
        "whole",
        "",
        (
            "id:i name:s fieldId:s type:s salesforceId:s isRequired:b isRecordMultipleResponses:b isUseValues:b "
            f"isAnalyticsSynced:b {AUDIT}"
        ),
    ),
    "custom_redirect": (
        "custom-redirects",
        "whole",
        "",
        (
            "id:i name:s url:s destinationUrl:s vanityUrl:s vanityUrlPath:s trackedUrl:s campaignId:i salesforceId:s "
            "isDeleted:b folderId:i trackerDomainId:i bitlyIsPersonalized:b bitlyShortUrl:s gaSource:s gaMedium:s "
            f"gaTerm:s gaContent:s gaCampaign:s {AUDIT}"
        ),
    ),
    "dynamic_content": (
        "dynamic-contents",
        "whole",
        "",
        (
            "id:i name:s basedOn:s basedOnProspectApiFieldId:s embedCode:s embedUrl:s tagReplacementLanguage:s "
            f"folderId:i trackerDomainId:i isDeleted:b baseContent:s {AUDIT}"
        ),
    ),
    "dynamic_content_variation": (
        "dynamic-content-variations",
        "whole",
        "",
        "id:i dynamicContentId:i comparison:s operator:s value1:s value2:s content:s",
    ),
    "email": (
        "emails",
        "events",
        "sentAt",
        (
            "id:i name:s subject:s type:s sentAt:dt clientType:s isOperational:b campaignId:i prospectId:i folderId:i "
            "listId:i listEmailId:i emailTemplateId:i trackerDomainId:i createdById:i salesforceCmsId:s"
        ),
    ),
    "email_template": (
        "email-templates",
        "incremental",
        "updatedAt",
        (
            "id:i name:s subject:s type:s campaignId:i folderId:i trackerDomainId:i isAutoResponderEmail:b "
            f"isDripEmail:b isListEmail:b isOneToOneEmail:b isDeleted:b tagReplacementLanguage:s {AUDIT}"
        ),
    ),
    "engagement_studio_program": (
        "engagement-studio-programs",
        "whole",
        "",
        (
            "id:i name:s status:s isDeleted:b salesforceId:s description:s scheduleCreatedById:i businessHours:obj "
            f"prospectsMultipleEntry:obj schedule:obj recipientListIds:ints suppressionListIds:ints {AUDIT}"
        ),
    ),
    "file": (
        "files",
        "whole",
        "",
        (
            "id:i name:s folderId:i campaignId:i salesforceId:s trackerDomainId:i url:s vanityUrl:s vanityUrlPath:s "
            f"size:i isTracked:b bitlyIsPersonalized:b bitlyShortUrl:s {AUDIT}"
        ),
    ),
    "folder": ("folders", "whole", "", f"id:i name:s parentFolderId:i path:s usePermissions:b {AUDIT}"),
    "folder_content": (
        "folder-contents",
        "whole",
        "",
        f"id:i folderId:i folderRef:s objectType:s objectId:i objectName:s objectRef:s {AUDIT}",
    ),
    "form": (
        "forms",
        "whole",
        "",
        (
            "id:i name:s campaignId:i layoutTemplateId:i folderId:i trackerDomainId:i salesforceId:s isDeleted:b "
            "isUseRedirectLocation:b isAlwaysDisplay:b isCookieless:b isCaptchaEnabled:b showNotProspect:b "
            "embedCode:s submitButtonText:s beforeFormContent:s afterFormContent:s thankYouContent:s thankYouCode:s "
            "redirectLocation:s fontSize:s fontFamily:s fontColor:s labelAlignment:s radioAlignment:s "
            f"checkboxAlignment:s requiredCharacter:s url:s salesforceCmsId:s {AUDIT}"
        ),
    ),
    "form_field": (
        "form-fields",
        "whole",
        "",
        (
            "id:i formId:i prospectApiFieldId:s type:s dataFormat:s sortOrder:i hasDependents:b hasProgressives:b "
            "hasValues:b label:s errorMessage:s cssClasses:s isRequired:b isAlwaysDisplay:b isMaintainInitialValue:b "
            f"isDoNotPrefill:b {AUDIT}"
        ),
    ),
    "form_handler": (
        "form-handlers",
        "whole",
        "",
        (
            "id:i name:s folderId:i campaignId:i trackerDomainId:i isDataForwarded:b successLocation:s errorLocation:s "
            "isAlwaysEmail:b isCookieless:b salesforceId:s embedCode:s isDeleted:b createdAt:dt createdById:i "
            "updatedById:i"
        ),
    ),
    "form_handler_field": (
        "form-handler-fields",
        "whole",
        "",
        (
            "id:i name:s formHandlerId:i dataFormat:s prospectApiFieldId:s isMaintainInitialValue:b errorMessage:s "
            "isRequired:b createdAt:dt createdById:i"
        ),
    ),
    "landing_page": (
        "landing-pages",
        "incremental",
        "updatedAt",
        (
            "id:i name:s title:s description:s campaignId:i salesforceId:s isDeleted:b layoutType:s "
            "layoutTableBorder:i layoutTemplateId:i isUseRedirectLocation:b redirectLocation:s isDoNotIndex:b "
            "bitlyIsPersonalized:b bitlyShortUrl:s url:s vanityUrl:s vanityUrlPath:s folderId:i formId:i "
            f"trackerDomainId:i archiveDate:date salesforceCmsId:s {AUDIT}"
        ),
    ),
    "layout_template": (
        "layout-templates",
        "whole",
        "",
        f"id:i name:s folderId:i isDeleted:b isIncludeDefaultCss:b {AUDIT}",
    ),
    "lifecycle_history": (
        "lifecycle-histories",
        "events",
        "createdAt",
        "id:i prospectId:i previousStageId:i nextStageId:i secondsElapsed:i createdAt:dt",
    ),
    "lifecycle_stage": (
        "lifecycle-stages",
        "whole",
        "",
        "id:i name:s isDeleted:b isLocked:b position:i matchType:s createdAt:dt updatedAt:dt",
    ),
    "list": (
        "lists",
        "incremental",
        "updatedAt",
        f"id:i name:s title:s description:s isPublic:b isDynamic:b isDeleted:b folderId:i campaignId:i {AUDIT}",
    ),
    "list_email": (
        "list-emails",
        "incremental",
        "updatedAt",
        (
            "id:i name:s subject:s isPaused:b isSent:b isDeleted:b isOperational:b sentAt:dt campaignId:i "
            f"clientType:s emailTemplateId:i trackerDomainId:i folderId:i type:s {AUDIT}"
        ),
    ),
    "opportunity": (
        "opportunities",
        "incremental",
        "updatedAt",
        (f"id:i name:s type:s stage:s status:s probability:i value:n closedAt:dt campaignId:i salesforceId:s {AUDIT}"),
    ),
    "tag": ("tags", "whole", "", f"id:i name:s objectCount:i {AUDIT}"),
    "tagged_object": (
        "tagged-objects",
        "whole",
        "",
        "id:i tagId:i objectType:s objectId:i objectName:s createdAt:dt createdById:i",
    ),
    "tracker_domain": (
        "tracker-domains",
        "whole",
        "",
        (
            "id:i domain:s isPrimary:b isDeleted:b defaultCampaignId:i httpsStatus:s sslStatus:s sslStatusDetails:s "
            f"sslRequestedById:i validationStatus:s validatedAt:dt vanityUrlStatus:s trackingCode:s {AUDIT}"
        ),
    ),
    "user": (
        "users",
        "incremental",
        "updatedAt",
        (
            "id:i email:s username:s firstName:s lastName:s jobTitle:s role:s roleName:s salesforceId:s isDeleted:b "
            f"tagReplacementLanguage:s {AUDIT}"
        ),
    ),
    "visit": (
        "visits",
        "events",
        "updatedAt",
        (
            "id:i visitorId:i prospectId:i visitorPageViewCount:i firstVisitorPageViewAt:dt lastVisitorPageViewAt:dt "
            "durationInSeconds:i sourceParameter:s campaignParameter:s mediumParameter:s contentParameter:s "
            "termParameter:s createdAt:dt updatedAt:dt"
        ),
    ),
    "visitor_page_view": (
        "visitor-page-views",
        "events",
        "createdAt",
        "id:i url:s title:s visitorId:i visitId:i campaignId:i durationInSeconds:i salesforceId:s createdAt:dt",
    ),
}

#: what the API user needs to read each object: Pardot's role abilities, by the object's menu (unverified)
ABILITIES: dict[str, str] = {
    "account": "Admin > Account Settings > View",
    "campaign": "Marketing > Campaigns > View",
    "custom_field": "Admin > Configure Fields > Prospect Fields > View",
    "custom_redirect": "Marketing > Content > Custom Redirects > View",
    "dynamic_content": "Marketing > Content > Dynamic Content > View",
    "dynamic_content_variation": "Marketing > Content > Dynamic Content > View",
    "email": "Marketing > Emails > View",
    "email_template": "Marketing > Emails > Templates > View",
    "engagement_studio_program": "Marketing > Automation > Engagement Studio > View",
    "file": "Marketing > Content > Files > View",
    "folder": "Marketing > Folders > View",
    "folder_content": "Marketing > Folders > View",
    "form": "Marketing > Forms > Forms > View",
    "form_field": "Marketing > Forms > Forms > View",
    "form_handler": "Marketing > Forms > Form Handlers > View",
    "form_handler_field": "Marketing > Forms > Form Handlers > View",
    "landing_page": "Marketing > Landing Pages > View",
    "layout_template": "Marketing > Content > Layout Templates > View",
    "lifecycle_history": "Reports > Lifecycle > View",
    "lifecycle_stage": "Reports > Lifecycle > View",
    "list": "Marketing > Segmentation > Lists > View",
    "list_email": "Marketing > Emails > View",
    "opportunity": "Prospects > Opportunities > View",
    "tag": "Marketing > Tags > View",
    "tagged_object": "Marketing > Tags > View",
    "tracker_domain": "Admin > Domain Management > View",
    "user": "Admin > Users > View",
    "visit": "Prospects > Visitors > View",
    "visitor_page_view": "Prospects > Visitors > View",
}
