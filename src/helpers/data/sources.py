"""The official raw files the panel is built from, where to obtain them, and their checksums.

The committed manifest `data/raw_manifest.sha256` (sha256sum format, paths relative to the raw
folder) is checked before every build, so a missing or changed file stops the build with one line
naming the file and where to get it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from helpers.core import paths
from helpers.core.errors import CareTrendsError

MANIFEST_NAME = "raw_manifest.sha256"


# --------------------------------------------------------------------------------------------
# Where every raw file comes from: the one table of publisher URLs (used by `care-trends data
# fetch` and the README's Sources section).
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SourceFile:
    relpath: str            # path inside the raw folder (as in the manifest)
    title: str              # what it is
    publisher: str
    page: str               # the publisher's page for the release (always given)
    url: str | None = None  # a direct download of exactly this file, where one is known
    licence: str = "Open Government Licence v3.0"


EES_CLA = ("https://explore-education-statistics.service.gov.uk/find-statistics/"
           "children-looked-after-in-england-including-adoptions")
EES_CIN = "https://explore-education-statistics.service.gov.uk/find-statistics/characteristics-of-children-in-need"
EES_CSWW = "https://explore-education-statistics.service.gov.uk/find-statistics/children-s-social-work-workforce"
GOV_SFR = "https://www.gov.uk/government/collections/statistics-looked-after-children"
OFSTED = "https://www.gov.uk/government/collections/childrens-social-care-statistics"  # cited in the file
LAIT_PAGE = "https://www.gov.uk/government/publications/local-authority-interactive-tool-lait"
# DfE's children's social care outcomes dashboard repository republishes the EES and Ofsted
# files unchanged; the snapshot was taken at this commit (April 2026).
CSC_REPO = "https://github.com/dfe-analytical-services/CSC_outcomes_and_enablers"
CSC_COMMIT = "2f5d11a431050523dab58810083259d3313029ae"
LAIT_REPO = "https://github.com/dfe-analytical-services/local-authority-interactive-tool"


def _csc(name: str, folder: str = "data-raw") -> str:
    return f"https://raw.githubusercontent.com/dfe-analytical-services/CSC_outcomes_and_enablers/{CSC_COMMIT}/{folder}/{name}"


def _lait(commit: str, name: str = "bds_long_0.parquet") -> str:
    return f"{LAIT_REPO}/raw/{commit}/01_data/02_prod/{name}"


_SFR_TITLE = "DfE SFR underlying data, children looked after in England ({year})"
SOURCE_FILES: tuple[SourceFile, ...] = (
    # Looked after: EES releases (renamed on download: the EES file name carries no release year).
    *(SourceFile(f"{folder}/cla_number_and_rate_per_10k_children_release{year}_{year - 4}-{year}.csv",
                 f"EES 'CLA numbers and rates per 10,000 children - by local authority', {year} release",
                 "Department for Education", EES_CLA)
      for folder, year in (("dfe_ees_2022", 2022), ("dfe_csc_outcomes", 2023), ("dfe_csc_outcomes", 2024),
                           ("dfe_csc_outcomes", 2025))),
    SourceFile("dfe_ees_2022/la_cla_who_started_to_be_looked_after_release2022_2018-2022.csv",
               "EES children who started to be looked after by characteristic, by LA, 2022 release",
               "Department for Education", EES_CLA),
    SourceFile("dfe_ees_2022/la_children_who_ceased_during_year_release2022_2018-2022.csv",
               "EES children who ceased to be looked after by characteristic, by LA, 2022 release",
               "Department for Education", EES_CLA),
    SourceFile("dfe_ees_2022/cla_time_series_1994_2024_national.csv",
               "EES national time series of children looked after, 1994-2024", "Department for Education", EES_CLA),
    # The front door and child protection: EES 'Children in need' data files.
    SourceFile("dfe_csc_outcomes/c1_children_in_need_referrals_and_rereferrals_2013_to_2025.csv",
               "EES C1 referrals and re-referrals by LA, 2013-2025", "Department for Education", EES_CIN,
               _csc("c1_children_in_need_referrals_and_rereferrals_2013_to_2025.csv")),
    SourceFile("dfe_csc_outcomes/b1_children_in_need_2013_to_2025.csv",
               "EES B1 children in need by LA, 2013-2025", "Department for Education", EES_CIN,
               _csc("b1_children_in_need_2013_to_2025.csv")),
    SourceFile("dfe_csc_outcomes/d3_cpps_subsequent_plan_2013_to_2025.csv",
               "EES D3 child protection plans starting, second or subsequent, by LA, 2013-2025",
               "Department for Education", EES_CIN, _csc("d3_cpps_subsequent_plan_2013_to_2025.csv")),
    SourceFile("dfe_csc_outcomes/d5_cpps_at31march_by_duration_2013_to_2025.csv",
               "EES D5 child protection plans at 31 March by duration, by LA, 2013-2025",
               "Department for Education", EES_CIN, _csc("d5_cpps_at31march_by_duration_2013_to_2025.csv")),
    SourceFile("dfe_csc_outcomes/csww_indicators_2017_to_2025.csv",
               "EES children's social work workforce indicators by LA, 2017-2025", "Department for Education",
               EES_CSWW, _csc("csww_indicators_2017_to_2025.csv")),
    SourceFile("dfe_csc_outcomes/LA_Inspection_Outcomes_as_at_31_March_2025.ods",
               "Ofsted local authority inspection outcomes as at 31 March 2025", "Ofsted", OFSTED,
               _csc("LA_Inspection_Outcomes_as_at_31_March_2025.ods")),
    # Populations and statistical neighbours.
    SourceFile("dfe_csc_outcomes/ons_mid-year_population_estimates_2012_to_2024.csv",
               "ONS mid-year population estimates, children aged 0-17, 2012-2024 (as republished by DfE)",
               "Office for National Statistics", CSC_REPO, _csc("ons_mid-year_population_estimates_2012_to_2024.csv")),
    SourceFile("dfe_csc_outcomes/sn_model_2025_wide.csv", "DfE statistical neighbour model 2025",
               "Department for Education", CSC_REPO, _csc("sn_model_2025_wide.csv")),
    SourceFile("dfe_csc_outcomes/New_Statistical_Neighbour_Groupings_April_2021.csv",
               "DfE children's services statistical neighbour groupings, April 2021", "Department for Education",
               CSC_REPO, _csc("New_Statistical_Neighbour_Groupings_April_2021.csv", folder="data")),
    # LAIT: rates, section 251 spend, statistical neighbour workbooks.
    SourceFile("dfe_lait/bds_long_0_HEAD_2e30e39.parquet", "DfE LAIT production data (all indicators, long)",
               "Department for Education", LAIT_PAGE, _lait("2e30e39")),
    SourceFile("dfe_lait/bds_long_0_09c1940.parquet", "DfE LAIT production data, November 2024 version",
               "Department for Education", LAIT_PAGE, _lait("09c1940")),
    SourceFile("dfe_lait/sn_april_2021.xlsx", "LAIT statistical neighbours, April 2021", "Department for Education",
               LAIT_PAGE, _lait("2e30e39", "sn_april_2021.xlsx")),
    SourceFile("dfe_lait/sn_may_2025.xlsx", "LAIT statistical neighbours, May 2025", "Department for Education",
               LAIT_PAGE, _lait("2e30e39", "sn_may_2025.xlsx")),
    # 2010-2017: SFR underlying data (zips on GOV.UK, unpacked; no stable per-file URL).
    *(SourceFile(f"dfe_sfr_2010_2017/{name}", _SFR_TITLE.format(year=name[:4]), "Department for Education", GOV_SFR)
      for name in (
          "2010_SFR27_2010_Ceased.csv", "2010_SFR27_2010_March.csv", "2010_SFR27_2010_Started.csv",
          "2010_SFR27_2010_metadata_1.txt", "2011_SFE21_ADM.csv", "2011_SFR21_CEA.csv", "2011_SFR21_CLA.csv",
          "2012_UnderlyingData_SFR20_ADM2012.csv", "2012_UnderlyingData_SFR20_CLA2012.csv",
          "2012_UnderlyingData_SFR_CEA2012.csv", "2013_SFR36_ADM2013.csv", "2013_SFR36_CEA2013.csv",
          "2013_SFR36_CLA2013.csv", "2014_Meta_Data_Document.txt", "2014_SFR36_ADM2014.csv",
          "2014_SFR36_CEA2014.csv", "2014_SFR36_CLA2014.csv", "2015_Meta_Data_Document.txt",
          "2015_SFR34_ADM2015.csv", "2015_SFR34_CEA2015.csv", "2015_SFR34_CLA2015.csv",
          "2016_Meta_Data_Document.txt", "2016_SFR41_ADM2016.csv", "2016_SFR41_CEA2016.csv",
          "2016_SFR41_CLA2016.csv", "2017_SFR50_2017_MetaData.txt", "2017_SFR50_ADM2017.csv",
          "2017_SFR50_CEA2017.csv", "2017_SFR50_CLA2017.csv")),
)
SOURCES_BY_PATH = {f.relpath: f for f in SOURCE_FILES}

def where_to_obtain(relpath: str, manifest_file: Path | None = None) -> str:
    """Where to get a raw file, from the manifest's '# where: <prefix> | <text>' lines."""
    file = Path(manifest_file) if manifest_file else manifest_path()
    if file.is_file():
        for line in file.read_text(encoding="utf-8").splitlines():
            if line.startswith("# where:"):
                prefix, _, where = line.removeprefix("# where:").partition("|")
                if relpath.startswith(prefix.strip()):
                    return where.strip()
    return "the publisher named in data/raw/SOURCES.md"


def manifest_path() -> Path:
    return paths.project_root() / "data" / MANIFEST_NAME


def read_manifest(path: Path | None = None) -> dict[str, str]:
    """{relative path: sha256} from the committed manifest."""
    path = Path(path) if path else manifest_path()
    entries = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        digest, name = line.split(maxsplit=1)
        entries[name.lstrip("*").removeprefix("./")] = digest.lower()
    return entries


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_raw_files(raw_dir: Path, manifest: dict[str, str] | None = None) -> dict[str, str]:
    """Verify every manifest file exists in raw_dir with the expected SHA-256.

    Returns {relative path: sha256}. Raises CareTrendsError naming the first bad file."""
    manifest = manifest or read_manifest()
    raw_dir = Path(raw_dir)
    problems = []
    for rel, expected in sorted(manifest.items()):
        file = raw_dir / rel
        if not file.is_file():
            problems.append(f"raw file {rel} is missing from {raw_dir}")
        elif sha256_file(file) != expected:
            problems.append(f"raw file {rel} in {raw_dir} does not match its SHA-256 in "
                            f"data/{MANIFEST_NAME} (changed or a different edition)")
        else:
            continue
        if len(problems) == 1:
            first_rel = rel
    if problems:
        more = f" ({len(problems) - 1} more file(s) also fail)" if len(problems) > 1 else ""
        raise CareTrendsError(
            f"{problems[0]}{more}; obtain the original from {where_to_obtain(first_rel)}, "
            f"or point --raw-dir / ${paths.RAW_DIR_ENV} at a folder holding the snapshot"
        )
    return dict(manifest)
