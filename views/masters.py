"""Disease masters, read-only on screen (they are loaded from files by `nanbyo load-masters`)."""
from models.masters import NanbyoDisease, ShomanDisease, ShomanGroup
from views.base import ScopedModelView


class MasterView(ScopedModelView):
    area = "masters"
    column_display_pk = False


class NanbyoDiseaseView(MasterView):
    column_list = ["notification_no", "nando_id", "is_subtype", "name_ja", "name_en", "category_id"]
    column_labels = {"notification_no": "告示番号", "nando_id": "NANDO ID", "is_subtype": "細分類",
                     "name_ja": "疾病名", "name_en": "英語名", "category_id": "疾患分類"}
    column_searchable_list = ["name_ja", "nando_id"]
    column_filters = ["notification_no", "is_subtype"]
    column_default_sort = "id"


class ShomanGroupView(MasterView):
    column_list = ["group_id", "name_ja", "name_en"]
    column_labels = {"group_id": "疾患群・大分類", "name_ja": "名称", "name_en": "英語名"}
    column_searchable_list = ["name_ja", "group_id"]
    column_default_sort = "id"


class ShomanDiseaseView(MasterView):
    column_list = ["shoman_code", "group_id", "notification_no", "name_ja", "name_en"]
    column_labels = {"shoman_code": "疾病コード", "group_id": "疾患群・大分類", "notification_no": "告示番号",
                     "name_ja": "疾病名", "name_en": "英語名"}
    column_searchable_list = ["name_ja", "shoman_code"]
    column_filters = ["group_id"]
    column_default_sort = "id"


MASTER_VIEWS = [(NanbyoDiseaseView, NanbyoDisease, "指定難病"), (ShomanGroupView, ShomanGroup, "小慢 疾患群"),
                (ShomanDiseaseView, ShomanDisease, "小慢 疾病")]
