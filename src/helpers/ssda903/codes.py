"""SSDA903 column layout and code lists (DfE children looked after return).

Kept as plain data so validation, derivation and the synthetic generator agree on one list.
"""

from __future__ import annotations

#: Header table: one row per child.
HEADER_COLUMNS = ("CHILD", "SEX", "DOB", "ETHNIC", "UPN", "MOTHER", "MC_DOB")
#: Episodes table: one row per episode (a spell with one legal status and one placement).
EPISODE_COLUMNS = ("CHILD", "DECOM", "RNE", "LS", "CIN", "PLACE", "PLACE_PROVIDER", "DEC", "REC",
                   "REASON_PLACE_CHANGE", "HOME_POST", "PL_POST", "URN")
#: Columns without which nothing can be derived (missing -> fatal).
REQUIRED_HEADER = ("CHILD", "DOB")
REQUIRED_EPISODES = ("CHILD", "DECOM", "RNE", "LS", "DEC", "REC")

#: Reason for new episode: S started to be looked after; L legal status change only; P placement
#: change only; B both; T placement change, same carer; U legal status and placement change, same carer.
RNE_CODES = frozenset({"S", "L", "P", "T", "B", "U"})
#: Legal status.
LS_CODES = frozenset({"C1", "C2", "D1", "E1", "V2", "V3", "V4", "L1", "L2", "L3", "J1", "J2", "J3"})
#: Short-break legal statuses: DfE leaves these children out of the looked-after statistics.
SHORT_BREAK_LS = frozenset({"V3", "V4"})
#: Category of need.
CIN_CODES = frozenset({f"N{i}" for i in range(1, 9)})
CIN_LABELS = {"N1": "Abuse or neglect", "N2": "Child's disability", "N3": "Parental illness or disability",
              "N4": "Family in acute stress", "N5": "Family dysfunction",
              "N6": "Socially unacceptable behaviour", "N7": "Low income", "N8": "Absent parenting"}
LS_LABELS = {"C1": "Interim care order", "C2": "Full care order", "D1": "Freeing order",
             "E1": "Placement order", "V2": "Section 20 (single period)",
             "V3": "Section 20 short break (single)", "V4": "Section 20 short breaks (series)",
             "L1": "Police protection", "L2": "Emergency protection order",
             "L3": "Child assessment order", "J1": "Remanded to LA accommodation",
             "J2": "PACE accommodation", "J3": "Youth rehabilitation order with residence"}
#: Reason episode ceased. X1 = the episode ends and a new one begins the same day (still in care).
REC_CODES = frozenset({"E11", "E12", "E2", "E3", "E4A", "E4B", "E13", "E41", "E45", "E46", "E47", "E48",
                       "E5", "E6", "E7", "E8", "E9", "E14", "E15", "E16", "E17", "X1"})
CONTINUING_REC = "X1"
#: Exit reason groups reported in the monthly series (the issue's five groups).
EXIT_GROUPS = {
    "returned_home": ("E4A", "E4B", "E13"),
    "adoption": ("E11", "E12"),
    "sgo": ("E45", "E46", "E47", "E48"),
    "independent_living_18": ("E5", "E6", "E15", "E17"),
    "other": ("E2", "E3", "E41", "E7", "E8", "E9", "E14", "E16"),
}
REC_TO_GROUP = {code: group for group, codes in EXIT_GROUPS.items() for code in codes}
SEX_CODES = frozenset({"1", "2"})

#: DfE age bands at the start of care (years).
AGE_BANDS = (("under_1", 0, 1), ("1_to_4", 1, 5), ("5_to_9", 5, 10), ("10_to_15", 10, 16),
             ("16_and_over", 16, 99))

#: Which code list each coded column is checked against.
CODE_LISTS = {"RNE": RNE_CODES, "LS": LS_CODES, "CIN": CIN_CODES, "REC": REC_CODES}
