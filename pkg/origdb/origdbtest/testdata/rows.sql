-- A running original site, written the way the original writes its rows (times relative to
-- now, in UTC: the tests read them with the time zone UTC).

-- connector.py's first admin, on an empty database.
INSERT INTO user(email, _password, firstname, lastname, email_confirmed, user_authorized, is_admin)
	VALUES('admin@piseduce.fr', '$2b$12$qX460DWxWW3rzu5Q.Ot2juQDxb4lTA28rC6Y01BWvSt5i9Ey763du', 'Admin', 'Admin', 1, 1, 1);

-- login.py's signup (Flask-Bcrypt hash, cost 12; the booleans get SQLAlchemy's default), then
-- the admin page's add_user_auth, the e-mail link's confirm_email, the user page's ssh_put.
-- Passwords: alice "alice-old-secret" (cost 12, as Flask-Bcrypt makes them); bob "bob old
-- password" and carol "carol password" (cost 4: a cost-12 check takes seconds under the race
-- detector); dave unknown.
INSERT INTO user(email, _password, firstname, lastname, ssh_key, email_confirmed, user_authorized, is_admin, email_confirmation_token)
	VALUES('alice@example.org', '$2b$12$9BdKJR8ImZ/guOnbIRU2Z.ACyBKgdUdO10gOClnSXRtAEHsSpY7Ta', 'Alice', 'Liddell', NULL, 0, 0, 0, 'tok-alice');
UPDATE user SET user_authorized = 1 WHERE id = 2;
UPDATE user SET email_confirmed = 1 WHERE email_confirmation_token = 'tok-alice';
UPDATE user SET ssh_key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIADZ79lRkqyw2aNovvI9/S6w+WAhdwMggW4yjybt1clv alice@laptop' WHERE id = 2;
-- bob: no mail server, so never confirmed; authorized by the admin.
INSERT INTO user(email, _password, firstname, lastname, ssh_key, email_confirmed, user_authorized, is_admin, email_confirmation_token)
	VALUES('bob@example.org', '$2b$04$MIGwmazJwqjGvSX8kr18qu8kE0rPOafLDYE7N9E0hRNmHy.CJFkOq', 'Bob', 'Marley', NULL, 0, 0, 0, NULL);
UPDATE user SET user_authorized = 1 WHERE id = 3;
-- carol waits for approval; Dave signed up with capitals and a latin1 name.
INSERT INTO user(email, _password, firstname, lastname, ssh_key, email_confirmed, user_authorized, is_admin, email_confirmation_token)
	VALUES('carol@example.org', '$2b$04$XLouaLpqlrU0OsgVaT1WSupdg2739fpg8PNZgGE1gJqWlegXGZ.XK', 'Carol', 'Danvers', NULL, 1, 0, 0, NULL);
INSERT INTO user(email, _password, firstname, lastname, ssh_key, email_confirmed, user_authorized, is_admin, email_confirmation_token)
	VALUES('Dave@Example.org', '$2b$12$pHHvZtj8xZMVCbNO96Qni.eLM5nZxfCGgqz4uINOALlbRumLZ93re', 'Dävé', 'Noël', NULL, 1, 1, 0, NULL);

-- webapp.py's take (the node held, state initialized), then process_take (the form), then
-- pitasks moving the state along. Deployments 1 and 2: alice's "exp1", deployed, 3 hours
-- from an hour ago.
INSERT INTO deployment(process, state, node_name, user_id, name) VALUES('deploy', 'initialized', 'node-1', 2, 'initialized');
INSERT INTO deployment(process, state, node_name, user_id, name) VALUES('deploy', 'initialized', 'node-2', 2, 'initialized');
UPDATE deployment SET name = 'exp1', public_key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEk303fKVHVb9ROJsmMJgvFjY0np7LnrjS52sEk0YuBd bob@lab',
	init_script = 'echo hello > /tmp/hello', system_pwd = 'alice pw:1', environment = 'raspbian_buster', os_update = 0,
	duration = '3', system_size = '8', start_date = UTC_TIMESTAMP() - INTERVAL 1 HOUR, state = 'boot_conf'
	WHERE user_id = 2 AND state = 'initialized';
UPDATE deployment SET state = 'deployed', temp_info = NULL, updated_at = UTC_TIMESTAMP() - INTERVAL 40 MINUTE WHERE id IN (1, 2);

-- 3: bob's deployment, then build_env (save as environment "bob_env"), stopped by the
-- original's pitasks in img_copy: temp_info is "name last_sector partition".
INSERT INTO deployment(process, state, node_name, user_id, name) VALUES('deploy', 'initialized', 'node-3', 3, 'initialized');
UPDATE deployment SET name = 'bobs', public_key = '', init_script = '', system_pwd = 'Xy12Zt34', environment = 'raspbian_buster',
	os_update = 1, duration = '72', system_size = '1024', start_date = UTC_TIMESTAMP() - INTERVAL 2 HOUR, state = 'deployed',
	updated_at = UTC_TIMESTAMP() - INTERVAL 90 MINUTE WHERE id = 3;
UPDATE deployment SET process = 'save_env', state = 'img_part', temp_info = 'bob_env' WHERE id = 3;
UPDATE deployment SET state = 'img_format', temp_info = 'bob_env 7340031' WHERE id = 3;
UPDATE deployment SET state = 'img_copy', temp_info = 'bob_env 7340031 /dev/mmcblk0p3', updated_at = UTC_TIMESTAMP() - INTERVAL 10 MINUTE WHERE id = 3;

-- 4: bob's node lost in ssh_system (temp_info: the state it was lost in).
INSERT INTO deployment(process, state, node_name, user_id, name) VALUES('deploy', 'initialized', 'node-4', 3, 'initialized');
UPDATE deployment SET name = 'lostone', public_key = '', init_script = '', system_pwd = 'Lost1234', environment = 'raspbian_buster',
	os_update = 0, duration = '24', system_size = '200', start_date = UTC_TIMESTAMP() - INTERVAL 3 HOUR, state = 'lost',
	temp_info = 'ssh_system', updated_at = UTC_TIMESTAMP() - INTERVAL 150 MINUTE WHERE id = 4;

-- 5: the admin's node in the middle of the original's deploy (a state we do not have).
INSERT INTO deployment(process, state, node_name, user_id, name) VALUES('deploy', 'initialized', 'node-5', 1, 'initialized');
UPDATE deployment SET name = 'admin test', public_key = '', init_script = '', system_pwd = 'Adm1nPass', environment = 'raspbian_buster',
	os_update = 0, duration = '2', system_size = '8', start_date = UTC_TIMESTAMP() - INTERVAL 5 MINUTE, state = 'delete_partition',
	updated_at = UTC_TIMESTAMP() - INTERVAL 1 MINUTE WHERE id = 5;

-- 6: Dave's deployed node whose end is past (end_date set by hand: the original never ends
-- a deployment by itself).
INSERT INTO deployment(process, state, node_name, user_id, name) VALUES('deploy', 'initialized', 'node-6', 5, 'initialized');
UPDATE deployment SET name = 'old', public_key = NULL, init_script = NULL, system_pwd = 'OldPass12', environment = 'raspbian_buster',
	os_update = 0, duration = '2', system_size = '8', start_date = UTC_TIMESTAMP() - INTERVAL 30 HOUR,
	end_date = UTC_TIMESTAMP() - INTERVAL 1 HOUR, state = 'deployed', updated_at = UTC_TIMESTAMP() - INTERVAL 29 HOUR WHERE id = 6;

-- 7: alice's earlier deployment on node-1, destroyed long ago: not current.
INSERT INTO deployment(process, state, node_name, user_id, name, environment, duration, system_size, system_pwd, start_date, updated_at)
	VALUES('destroy', 'destroyed', 'node-1', 2, 'older', 'raspbian_buster', '2', '8', 'abcdefgh', UTC_TIMESTAMP() - INTERVAL 30 DAY, UTC_TIMESTAMP() - INTERVAL 29 DAY);

-- 8: bob took node-7 and left the form: still initialized.
INSERT INTO deployment(process, state, node_name, user_id, name) VALUES('deploy', 'initialized', 'node-7', 3, 'initialized');

-- 9: alice's node-8 being hard-rebooted by the original (temp_info: where it goes back to).
INSERT INTO deployment(process, state, node_name, user_id, name) VALUES('deploy', 'initialized', 'node-8', 2, 'initialized');
UPDATE deployment SET name = 'rb', public_key = '', init_script = '', system_pwd = 'Reboot12', environment = 'raspbian_buster',
	os_update = 0, duration = '10', system_size = '8', start_date = UTC_TIMESTAMP() - INTERVAL 1 HOUR,
	state = 'coming_back', process = 'reboot', temp_info = 'deployed', updated_at = UTC_TIMESTAMP() WHERE id = 9;
