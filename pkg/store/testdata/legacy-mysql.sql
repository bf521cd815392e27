-- A database as store.Open left it before versioned migrations (gorm AutoMigrate, d153e08), with a
-- row in every table. Made with mariadb-dump --compact; the old-database upgrade test loads it.
SET FOREIGN_KEY_CHECKS=0;
CREATE TABLE `api_tokens` (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `user_id` bigint(20) unsigned NOT NULL,
  `name` varchar(100) DEFAULT NULL,
  `hash` varchar(64) NOT NULL,
  `created_at` datetime(3) DEFAULT NULL,
  `last_used_at` datetime(3) DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `idx_api_tokens_hash` (`hash`),
  KEY `idx_api_tokens_user_id` (`user_id`)
) ENGINE=InnoDB AUTO_INCREMENT=2 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
INSERT INTO `api_tokens` VALUES (1,1,'ci','9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08','2026-11-26 17:07:03.250','2026-11-26 17:07:03.250');
CREATE TABLE `deployments` (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `reservation_id` bigint(20) unsigned NOT NULL,
  `node_id` bigint(20) unsigned NOT NULL,
  `user_id` bigint(20) unsigned NOT NULL,
  `name` varchar(100) DEFAULT NULL,
  `environment_id` bigint(20) unsigned DEFAULT NULL,
  `os_update` tinyint(1) DEFAULT NULL,
  `system_size` bigint(20) DEFAULT NULL,
  `system_password` varchar(255) DEFAULT NULL,
  `public_key` text DEFAULT NULL,
  `init_script` text DEFAULT NULL,
  `generation` bigint(20) NOT NULL DEFAULT 0,
  `process` varchar(16) NOT NULL,
  `state` varchar(32) NOT NULL,
  `resume_process` varchar(16) DEFAULT NULL,
  `resume_state` varchar(32) DEFAULT NULL,
  `state_started_at` datetime(3) DEFAULT NULL,
  `exec_done` tinyint(1) DEFAULT NULL,
  `rebooted` tinyint(1) DEFAULT NULL,
  `next_check_at` datetime(3) DEFAULT NULL,
  `failures` bigint(20) DEFAULT NULL,
  `last_error` text DEFAULT NULL,
  `bytes_done` bigint(20) DEFAULT NULL,
  `bytes_total` bigint(20) DEFAULT NULL,
  `throughput` bigint(20) DEFAULT NULL,
  `script_output` mediumtext DEFAULT NULL,
  `scratch` text DEFAULT NULL,
  `lease_owner` varchar(64) DEFAULT NULL,
  `lease_until` datetime(3) DEFAULT NULL,
  `created_at` datetime(3) DEFAULT NULL,
  `updated_at` datetime(3) DEFAULT NULL,
  PRIMARY KEY (`id`),
  KEY `idx_deployments_reservation_id` (`reservation_id`),
  KEY `idx_deployments_node_id` (`node_id`),
  KEY `idx_deployments_user_id` (`user_id`),
  KEY `idx_deployments_environment_id` (`environment_id`),
  KEY `idx_due` (`process`,`state`,`next_check_at`),
  KEY `idx_deployments_lease_owner` (`lease_owner`),
  CONSTRAINT `fk_deployments_environment` FOREIGN KEY (`environment_id`) REFERENCES `environments` (`id`),
  CONSTRAINT `fk_deployments_node` FOREIGN KEY (`node_id`) REFERENCES `nodes` (`id`),
  CONSTRAINT `fk_deployments_reservation` FOREIGN KEY (`reservation_id`) REFERENCES `reservations` (`id`) ON DELETE CASCADE,
  CONSTRAINT `fk_deployments_user` FOREIGN KEY (`user_id`) REFERENCES `users` (`id`)
) ENGINE=InnoDB AUTO_INCREMENT=2 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
INSERT INTO `deployments` VALUES (1,1,1,1,'exp1',1,0,8192,'secret','ssh-ed25519 AAAAlegacy ada','echo hi',3,'deploy','env_copy','','','2026-11-26 17:07:03.250',0,0,'2026-11-26 17:07:05.250',0,'',1000000,2000000000,9000000,'','{\"k\":\"v\"}','pimaster-1234','2026-11-26 17:07:33.250','2026-11-26 17:07:03.250','2026-11-26 17:07:03.250');
INSERT INTO `deployments` VALUES (2,1,2,1,'exp1',1,0,8192,'secret','','',1,'save_env','img_check','','','2026-11-26 17:07:03.250',0,0,'2026-11-26 17:07:05.250',0,'',0,0,0,'','{\"capture_name\":\"ada-tools\",\"capture_description\":\"with \\\"my\\\" tools\",\"file\":\"ada-tools-20261126.img.zst\",\"format\":\"zst\",\"size\":4096,\"sha256\":\"ab12\",\"root_start\":532480}','','2026-11-26 17:07:03.250','2026-11-26 17:07:03.250','2026-11-26 17:07:03.250');
CREATE TABLE `discovery_runs` (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `switch_id` bigint(20) unsigned NOT NULL,
  `ports` varchar(1024) DEFAULT NULL,
  `requested_by` bigint(20) unsigned DEFAULT NULL,
  `state` varchar(16) NOT NULL,
  `owner` varchar(64) DEFAULT NULL,
  `output` mediumtext DEFAULT NULL,
  `error` text DEFAULT NULL,
  `created_at` datetime(3) DEFAULT NULL,
  `started_at` datetime(3) DEFAULT NULL,
  `ended_at` datetime(3) DEFAULT NULL,
  PRIMARY KEY (`id`),
  KEY `idx_discovery_runs_switch_id` (`switch_id`),
  KEY `idx_discovery_runs_state` (`state`),
  CONSTRAINT `fk_discovery_runs_switch` FOREIGN KEY (`switch_id`) REFERENCES `switches` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB AUTO_INCREMENT=2 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
INSERT INTO `discovery_runs` VALUES (1,1,'4,5',1,'done','pimaster-1234','port 4: nothing\n','','2026-11-26 17:07:03.250','2026-11-26 17:07:03.250','2026-11-26 17:07:03.250');
CREATE TABLE `email_tokens` (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `hash` varchar(64) NOT NULL,
  `user_id` bigint(20) unsigned NOT NULL,
  `purpose` varchar(32) NOT NULL,
  `created_at` datetime(3) DEFAULT NULL,
  `expires_at` datetime(3) DEFAULT NULL,
  `used_at` datetime(3) DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `idx_email_tokens_hash` (`hash`),
  KEY `idx_email_tokens_user_id` (`user_id`),
  CONSTRAINT `fk_email_tokens_user` FOREIGN KEY (`user_id`) REFERENCES `users` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB AUTO_INCREMENT=2 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
INSERT INTO `email_tokens` VALUES (1,'fd61a03af4f77d870fc21e05e7e80678095c92d808cfb3b5c279ee04c74aca13',1,'confirm_email','2026-11-26 17:07:03.250','2026-11-26 18:07:03.250',NULL);
CREATE TABLE `environments` (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `name` varchar(100) NOT NULL,
  `type` varchar(16) NOT NULL DEFAULT 'default',
  `description` text DEFAULT NULL,
  `image_name` varchar(255) NOT NULL,
  `image_size` bigint(20) DEFAULT NULL,
  `image_format` varchar(16) DEFAULT NULL,
  `image_sha256` varchar(64) DEFAULT NULL,
  `decompress_on` varchar(16) DEFAULT NULL,
  `sector_start` bigint(20) DEFAULT NULL,
  `ssh_user` varchar(64) NOT NULL DEFAULT 'root',
  `shell` varchar(255) NOT NULL DEFAULT 'bash',
  `web` tinyint(1) DEFAULT NULL,
  `script_test` text DEFAULT NULL,
  `owner_id` bigint(20) unsigned DEFAULT NULL,
  `created_at` datetime(3) DEFAULT NULL,
  `updated_at` datetime(3) DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `idx_environments_name` (`name`),
  KEY `idx_environments_owner_id` (`owner_id`)
) ENGINE=InnoDB AUTO_INCREMENT=2 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
INSERT INTO `environments` VALUES (1,'raspios-lite','default','Raspberry Pi OS Lite','raspios.img.xz',2000000000,'xz','ab12','node',532480,'pi','bash',0,'',0,'2026-11-26 17:07:03.250','2026-11-26 17:07:03.250');
CREATE TABLE `host_keys` (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `role` varchar(16) DEFAULT NULL,
  `node_id` bigint(20) unsigned DEFAULT NULL,
  `key` text NOT NULL,
  `created_at` datetime(3) DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `idx_hostkey` (`role`,`node_id`)
) ENGINE=InnoDB AUTO_INCREMENT=2 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
INSERT INTO `host_keys` VALUES (1,'nfs',0,'ssh-ed25519 AAAAnfs','2026-11-26 17:07:03.250');
CREATE TABLE `nodes` (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `name` varchar(100) NOT NULL,
  `switch_id` bigint(20) unsigned NOT NULL,
  `port` bigint(20) NOT NULL,
  `ip` varchar(64) DEFAULT NULL,
  `mac` varchar(17) DEFAULT NULL,
  `serial` varchar(16) DEFAULT NULL,
  `model` varchar(64) DEFAULT NULL,
  `created_at` datetime(3) DEFAULT NULL,
  `updated_at` datetime(3) DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `idx_nodes_name` (`name`),
  UNIQUE KEY `idx_switch_port` (`switch_id`,`port`),
  KEY `idx_nodes_serial` (`serial`),
  CONSTRAINT `fk_nodes_switch` FOREIGN KEY (`switch_id`) REFERENCES `switches` (`id`)
) ENGINE=InnoDB AUTO_INCREMENT=4 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
INSERT INTO `nodes` VALUES (1,'pi-1',1,1,'192.0.2.101','dc:a6:32:00:00:01','a1b2c301','RPI4B','2026-11-26 17:07:03.250','2026-11-26 17:07:03.250');
INSERT INTO `nodes` VALUES (2,'pi-2',1,2,'192.0.2.102','dc:a6:32:00:00:02','a1b2c302','RPI4B','2026-11-26 17:07:03.250','2026-11-26 17:07:03.250');
INSERT INTO `nodes` VALUES (3,'pi-3',1,3,'192.0.2.103','dc:a6:32:00:00:03','a1b2c303','RPI4B','2026-11-26 17:07:03.250','2026-11-26 17:07:03.250');
CREATE TABLE `reservation_nodes` (
  `reservation_id` bigint(20) unsigned NOT NULL,
  `node_id` bigint(20) unsigned NOT NULL,
  PRIMARY KEY (`reservation_id`,`node_id`),
  KEY `fk_reservation_nodes_node` (`node_id`),
  CONSTRAINT `fk_reservation_nodes_node` FOREIGN KEY (`node_id`) REFERENCES `nodes` (`id`) ON DELETE CASCADE,
  CONSTRAINT `fk_reservation_nodes_reservation` FOREIGN KEY (`reservation_id`) REFERENCES `reservations` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
INSERT INTO `reservation_nodes` VALUES (1,1);
INSERT INTO `reservation_nodes` VALUES (1,2);
CREATE TABLE `reservations` (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `user_id` bigint(20) unsigned NOT NULL,
  `starts_at` datetime(3) DEFAULT NULL,
  `ends_at` datetime(3) DEFAULT NULL,
  `created_at` datetime(3) DEFAULT NULL,
  `updated_at` datetime(3) DEFAULT NULL,
  PRIMARY KEY (`id`),
  KEY `idx_reservations_user_id` (`user_id`),
  KEY `idx_reservations_starts_at` (`starts_at`),
  KEY `idx_reservations_ends_at` (`ends_at`),
  CONSTRAINT `fk_reservations_user` FOREIGN KEY (`user_id`) REFERENCES `users` (`id`)
) ENGINE=InnoDB AUTO_INCREMENT=2 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
INSERT INTO `reservations` VALUES (1,1,'2026-11-26 17:07:03.250','2026-11-28 17:07:03.250','2026-11-26 17:07:03.250','2026-11-26 17:07:03.250');
CREATE TABLE `sessions` (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `hash` varchar(64) NOT NULL,
  `user_id` bigint(20) unsigned NOT NULL,
  `ip` varchar(64) DEFAULT NULL,
  `user_agent` varchar(255) DEFAULT NULL,
  `created_at` datetime(3) DEFAULT NULL,
  `expires_at` datetime(3) DEFAULT NULL,
  `last_seen_at` datetime(3) DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `idx_sessions_hash` (`hash`),
  KEY `idx_sessions_user_id` (`user_id`),
  KEY `idx_sessions_expires_at` (`expires_at`),
  CONSTRAINT `fk_sessions_user` FOREIGN KEY (`user_id`) REFERENCES `users` (`id`) ON DELETE CASCADE
) ENGINE=InnoDB AUTO_INCREMENT=2 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
INSERT INTO `sessions` VALUES (1,'60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752',1,'127.0.0.1','test','2026-11-26 17:07:03.250','2026-11-26 18:07:03.250','2026-11-26 17:07:03.250');
CREATE TABLE `settings` (
  `key` varchar(64) NOT NULL,
  `value` text DEFAULT NULL,
  PRIMARY KEY (`key`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
INSERT INTO `settings` VALUES ('session_secret','legacy-secret');
CREATE TABLE `state_events` (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `deployment_id` bigint(20) unsigned NOT NULL,
  `node_id` bigint(20) unsigned DEFAULT NULL,
  `process` varchar(16) DEFAULT NULL,
  `state` varchar(32) DEFAULT NULL,
  `outcome` varchar(16) DEFAULT NULL,
  `message` text DEFAULT NULL,
  `started_at` datetime(3) DEFAULT NULL,
  `ended_at` datetime(3) DEFAULT NULL,
  `duration_ms` bigint(20) DEFAULT NULL,
  PRIMARY KEY (`id`),
  KEY `idx_state_events_deployment_id` (`deployment_id`),
  KEY `idx_state_events_node_id` (`node_id`),
  KEY `idx_state_events_state` (`state`)
) ENGINE=InnoDB AUTO_INCREMENT=2 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
INSERT INTO `state_events` VALUES (1,1,1,'deploy','turn_on','done','','2026-11-26 17:06:03.250','2026-11-26 17:07:03.250',60000);
CREATE TABLE `switches` (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `name` varchar(100) NOT NULL,
  `ip` varchar(64) NOT NULL,
  `snmp_port` bigint(20) DEFAULT NULL,
  `snmp_version` varchar(4) NOT NULL DEFAULT '2c',
  `community` varchar(255) DEFAULT NULL,
  `v3_user` varchar(100) DEFAULT NULL,
  `v3_auth_proto` varchar(16) DEFAULT NULL,
  `v3_auth_pass` varchar(255) DEFAULT NULL,
  `v3_priv_proto` varchar(16) DEFAULT NULL,
  `v3_priv_pass` varchar(255) DEFAULT NULL,
  `port_count` bigint(20) DEFAULT NULL,
  `master_port` bigint(20) DEFAULT NULL,
  `o_id` varchar(255) NOT NULL,
  `o_id_offset` bigint(20) DEFAULT NULL,
  `created_at` datetime(3) DEFAULT NULL,
  `updated_at` datetime(3) DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `idx_switches_name` (`name`)
) ENGINE=InnoDB AUTO_INCREMENT=2 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
INSERT INTO `switches` VALUES (1,'poe-rack1','192.0.2.10',0,'3','','poeadmin','SHA','auth-pass-1','AES','priv-pass-1',8,8,'.1.3.6.1.2.1.105.1.1.1.3.1',48,'2026-11-26 17:07:03.250','2026-11-26 17:07:03.250');
CREATE TABLE `users` (
  `id` bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  `email` varchar(255) NOT NULL,
  `password_hash` varchar(255) NOT NULL,
  `first_name` varchar(100) DEFAULT NULL,
  `last_name` varchar(100) DEFAULT NULL,
  `ssh_key` text DEFAULT NULL,
  `email_confirmed` tinyint(1) DEFAULT NULL,
  `authorized` tinyint(1) DEFAULT NULL,
  `admin` tinyint(1) DEFAULT NULL,
  `created_at` datetime(3) DEFAULT NULL,
  `updated_at` datetime(3) DEFAULT NULL,
  PRIMARY KEY (`id`),
  UNIQUE KEY `idx_users_email` (`email`)
) ENGINE=InnoDB AUTO_INCREMENT=2 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci;
INSERT INTO `users` VALUES (1,'ada@example.org','$2a$10$legacyhash','Ada','Lovelace','ssh-ed25519 AAAAlegacy ada',1,1,1,'2026-11-26 17:07:03.250','2026-11-26 17:07:03.250');
SET FOREIGN_KEY_CHECKS=1;
