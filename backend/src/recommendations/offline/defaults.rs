//! Default values of the rows the offline maker proposes: zone importance and risk, asset
//! criticality, and the zones and questions of patrol checkpoints.

use crate::conversations::facts::{AssetKind, ZoneKind};

/// Returns a zone's default importance (1-5) and risk level: rooms holding cash, data or
/// valuables highest, entry points next, floors and roofs lowest.
pub fn zone_profile(kind: ZoneKind) -> (u8, &'static str) {
    match kind {
        ZoneKind::Vault | ZoneKind::ServerRoom | ZoneKind::CashRoom => (5, "high"),
        ZoneKind::Gate | ZoneKind::Perimeter | ZoneKind::LoadingDock | ZoneKind::AtmArea => {
            (4, "high")
        }
        ZoneKind::Lobby | ZoneKind::Parking | ZoneKind::WarehouseFloor | ZoneKind::PlantRoom => {
            (3, "medium")
        }
        ZoneKind::OfficeFloor | ZoneKind::Roof | ZoneKind::Other => (2, "low"),
    }
}

/// Returns an asset kind's default criticality: life-safety equipment is critical.
pub fn asset_criticality(kind: AssetKind) -> &'static str {
    match kind {
        AssetKind::FireAlarmPanel | AssetKind::SprinklerValve | AssetKind::FireExtinguisher => {
            "critical"
        }
        AssetKind::Generator | AssetKind::Ups | AssetKind::Nvr | AssetKind::Elevator => "high",
        AssetKind::Camera | AssetKind::AccessReader | AssetKind::HvacUnit | AssetKind::Pump => {
            "medium"
        }
        AssetKind::Other => "low",
    }
}

/// Zone kinds that get patrol checkpoints without being asked: entry points, and the rooms
/// holding cash, data or valuables.
pub const PATROL_ZONES: [ZoneKind; 7] = [
    ZoneKind::Gate,
    ZoneKind::Perimeter,
    ZoneKind::LoadingDock,
    ZoneKind::Vault,
    ZoneKind::CashRoom,
    ZoneKind::ServerRoom,
    ZoneKind::AtmArea,
];

/// Returns what guards verify at a patrol checkpoint of the zone kind.
pub fn patrol_questions(kind: ZoneKind) -> Vec<&'static str> {
    let specific = match kind {
        ZoneKind::Gate => "Is the gate closed and locked, or staffed?",
        ZoneKind::Perimeter => "Is the fence intact, with no gaps, damage or climbing aids?",
        ZoneKind::LoadingDock => "Are dock doors closed and no unattended vehicles or goods left?",
        ZoneKind::Vault | ZoneKind::CashRoom => "Is the door locked and the alarm armed?",
        ZoneKind::ServerRoom => "Is the door locked and the room temperature normal?",
        ZoneKind::AtmArea => "Is the ATM free of skimmers or tampering?",
        _ => "Is the area secure and in order?",
    };
    vec![specific, "Anything unusual to report?"]
}
